import http from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * HTTP/1.1 message syntax for our upstream client (upstream-client.ts) and the proxy core: response header lines and
 * body framing, both parsed strictly, and the few lines that write a head. Anything malformed is an
 * {@link HttpSyntaxError}, never a guess at where a message ends: a guess is how request smuggling starts. (Requests
 * from the internet are parsed by Node's own llhttp, see gateway/gateway.ts.)
 */

/**
 * Headers in the shape of Node's `rawHeaders`: name, value, name, value… Names keep the sender's case and repeats stay
 * separate lines, so a proxy relays them as they came without building an object per message.
 */
export type RawHeaders = string[];

/** A message that is not well-formed HTTP/1.1; `reason` says what was wrong, for logs and 400 bodies. */
export class HttpSyntaxError extends Error {
  readonly code = 'EPROTO';
  constructor(readonly reason: string) {
    super(`malformed HTTP message (${reason})`);
    this.name = 'HttpSyntaxError';
  }
}

export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** The end of a message head. */
export const HEAD_END = Buffer.from('\r\n\r\n');
/** Largest chunk-size or trailer line accepted. */
const MAX_LINE_BYTES = 8 * 1024;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/;

/**
 * Whether a header name is `lowerName` (lower case), ignoring ASCII letter case as HTTP does. Compared character by
 * character rather than with `toLowerCase`: no string is made, and a name of another length or first letter costs
 * next to nothing. (Message text is read as latin1, where only A-Z lower-case to ASCII, so this is what
 * `name.toLowerCase() === lowerName` says.)
 */
export function isHeaderNamed(name: string, lowerName: string): boolean {
  const length = lowerName.length;
  if (name.length !== length) return false;
  for (let i = 0; i < length; i++) {
    let code = name.charCodeAt(i);
    if (code >= 65 && code <= 90) code += 32;
    if (code !== lowerName.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * A fixed set of (lower-case) header names, looked up with {@link isHeaderNamed}: grouped by length, so a lookup
 * compares a name with the few of its length only, without lower-casing it.
 */
export class HeaderNames {
  private readonly byLength: string[][] = [];

  constructor(lowerNames: Iterable<string>) {
    for (const name of lowerNames) {
      while (this.byLength.length <= name.length) this.byLength.push([]);
      this.byLength[name.length]!.push(name);
    }
  }

  has(name: string): boolean {
    if (name.length >= this.byLength.length) return false;
    const candidates = this.byLength[name.length]!;
    for (let i = 0; i < candidates.length; i++) if (isHeaderNamed(name, candidates[i]!)) return true;
    return false;
  }
}

/** Whether a comma-separated header value (`Connection`, `Transfer-Encoding`) lists `token`, case-insensitively. */
export function listsToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (const item of value.split(',')) if (isHeaderNamed(item.trim(), token)) return true;
  return false;
}

/** Throws a TypeError for a header we must not send: a name that is not a token, or a value with control characters. */
export function checkOutgoingHeader(name: string, value: string): void {
  if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  if (INVALID_VALUE.test(value)) throw new TypeError(`invalid value for header ${name}`);
}

/** The header lines of a head, and the values that decide its framing (repeats joined with `, `). */
export interface ParsedHeaders {
  rawHeaders: RawHeaders;
  connection: string | undefined;
  transferEncoding: string | undefined;
  contentLength: string | undefined;
}

/**
 * Parses `lines[from…]` as header lines. A repeated Content-Length with the same value is dropped; different values, a
 * malformed length, obs-fold, whitespace before the colon or control characters in a value are errors.
 */
export function parseHeaderLines(lines: string[], from: number): ParsedHeaders | HttpSyntaxError {
  const rawHeaders: RawHeaders = [];
  let connection: string | undefined;
  let transferEncoding: string | undefined;
  let contentLength: string | undefined;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return new HttpSyntaxError('bad header line');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return new HttpSyntaxError('bad header name');
    const value = trimOws(line, colon + 1);
    if (INVALID_VALUE.test(value)) return new HttpSyntaxError('bad header value');
    if (isHeaderNamed(name, 'connection')) {
      connection = connection === undefined ? value : `${connection}, ${value}`;
    } else if (isHeaderNamed(name, 'transfer-encoding')) {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    } else if (isHeaderNamed(name, 'content-length')) {
      if (!/^\d{1,15}$/.test(value)) return new HttpSyntaxError('bad content-length');
      if (contentLength !== undefined) {
        if (contentLength !== value) return new HttpSyntaxError('conflicting content-length');
        continue;
      }
      contentLength = value;
    }
    rawHeaders.push(name, value);
  }
  return { rawHeaders, connection, transferEncoding, contentLength };
}

/** `line` from `start`, without leading and trailing spaces and tabs (optional whitespace, RFC 9110 §5.6.3). */
function trimOws(line: string, start: number): string {
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 32 || line.charCodeAt(start) === 9)) start++;
  while (end > start && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--;
  return line.slice(start, end);
}

/** A response's status line; the standard reason phrase when none is given. */
export function statusLine(status: number, message?: string): string {
  return `HTTP/1.1 ${status} ${message ?? http.STATUS_CODES[status] ?? ''}\r\n`;
}

/** Writes a complete response on a raw socket (a refused request or upgrade) and ends the socket. */
export function writeRawResponse(socket: Duplex, status: number, contentType: string, body: string): void {
  const payload = Buffer.from(body);
  socket.write(
    statusLine(status) +
      headerLines(['content-type', contentType, 'content-length', String(payload.length), 'connection', 'close']),
  );
  socket.end(payload);
}

/** Header lines as written on the wire, with the blank line that ends a head. */
export function headerLines(headers: RawHeaders): string {
  let out = '';
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]!.replace(/[\r\n]/g, '')}\r\n`;
  return out + '\r\n';
}

/** How a request body is delimited: none, a length, or chunked (a length unknown in advance). */
export type RequestFraming = 'none' | 'chunked' | number;
/** How a message body is delimited: as a request's, or (responses only) by the connection closing. */
export type BodyFraming = RequestFraming | 'until-close';

const Step = { Length: 0, ChunkSize: 1, ChunkData: 2, ChunkDataEnd: 3, Trailers: 4, UntilClose: 5, Done: 6 } as const;
type Step = (typeof Step)[keyof typeof Step];

/**
 * Reads one message body out of the bytes of a connection, piece by piece: the caller hands it each buffer from an
 * offset and gets the body bytes found there; `offset` tells where the body (or its framing) stopped, so what follows
 * belongs to the next message. Trailers are read and dropped.
 */
export class BodyDecoder {
  /** Where reading stopped in the last buffer. */
  offset = 0;
  private step: Step;
  private remaining = 0;
  /** A chunk-size or trailer line being read, and the last complete one (undefined while incomplete). */
  private partial = '';
  private line: string | undefined;

  constructor(framing: BodyFraming) {
    if (framing === 'chunked') this.step = Step.ChunkSize;
    else if (framing === 'until-close') this.step = Step.UntilClose;
    else if (framing === 'none' || framing === 0) this.step = Step.Done;
    else {
      this.step = Step.Length;
      this.remaining = framing;
    }
  }

  /** The whole body has been read (never, for a body delimited by the connection closing). */
  get done(): boolean {
    return this.step === Step.Done;
  }

  /**
   * Reads from `data` at `offset` up to the next piece of body (returned) or the end of the body or of `data`; sets
   * `offset`. Undefined when only framing was read. Call again while `offset < data.length` and not `done`.
   */
  next(data: Buffer, offset: number): Buffer | undefined | HttpSyntaxError {
    this.offset = offset;
    while (this.offset < data.length) {
      switch (this.step) {
        case Step.Length:
        case Step.ChunkData: {
          const take = Math.min(this.remaining, data.length - this.offset);
          const piece = data.subarray(this.offset, this.offset + take);
          this.offset += take;
          this.remaining -= take;
          if (this.remaining === 0) this.step = this.step === Step.Length ? Step.Done : Step.ChunkDataEnd;
          return piece;
        }
        case Step.ChunkSize: {
          const error = this.readLine(data);
          if (error) return error;
          if (this.line === undefined) return undefined;
          const size = CHUNK_SIZE.exec(this.line);
          if (!size) return new HttpSyntaxError('bad chunk size');
          this.remaining = parseInt(size[1]!, 16);
          this.step = this.remaining === 0 ? Step.Trailers : Step.ChunkData;
          break;
        }
        case Step.ChunkDataEnd:
        case Step.Trailers: {
          const error = this.readLine(data);
          if (error) return error;
          if (this.line === undefined) return undefined;
          if (this.step === Step.ChunkDataEnd) {
            if (this.line !== '') return new HttpSyntaxError('chunk without CRLF');
            this.step = Step.ChunkSize;
          } else if (this.line === '') {
            this.step = Step.Done;
            return undefined;
          }
          break;
        }
        case Step.UntilClose: {
          const piece = this.offset === 0 ? data : data.subarray(this.offset);
          this.offset = data.length;
          return piece;
        }
        case Step.Done:
          return undefined;
      }
    }
    return undefined;
  }

  /** Reads up to the next CRLF into `line` (undefined while more data is needed), advancing `offset`. */
  private readLine(data: Buffer): HttpSyntaxError | undefined {
    const lf = data.indexOf(10, this.offset);
    const end = lf < 0 ? data.length : lf;
    this.partial += data.toString('latin1', this.offset, end);
    this.offset = lf < 0 ? data.length : lf + 1;
    this.line = undefined;
    if (this.partial.length > MAX_LINE_BYTES) return new HttpSyntaxError('line too long');
    if (lf < 0) return undefined;
    if (!this.partial.endsWith('\r')) return new HttpSyntaxError('bare LF');
    this.line = this.partial.slice(0, -1);
    this.partial = '';
    return undefined;
  }
}
