import { ACCESS_TOKEN_QUERY_PARAM, GITSPACE_ID_PATTERN } from '../contracts/access-token';
import { decodePathFully } from '../common/gateway-route';

/**
 * Reading a request target the way whoever is behind the gateway might read it: percent-decoded (as often as it
 * takes), letter case folded, repeated slashes collapsed. What must never reach the machine — the agent's private
 * API, the access token — is looked for in that reading, not in the bytes as sent.
 */

/** Dot segments (plain or percent-encoded), backslashes and NUL: refused rather than normalised. */
const UNSAFE_PATH = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)|\\|%5c|%00/i;

/**
 * A path as any server behind the gateway might read it: percent-decoded until nothing changes. Undefined (refuse the
 * request) for dot segments, backslashes or NUL in the path or in its decoding, or a decoding that fails. (Decoding
 * until stable only ever turns an unsafe escape into the unsafe character, so checking the end result suffices.)
 */
export function decodePath(path: string): string | undefined {
  if (UNSAFE_PATH.test(path)) return undefined;
  const decoded = decodePathFully(path);
  return decoded === undefined || UNSAFE_PATH.test(decoded) || decoded.includes('\0') ? undefined : decoded;
}

/**
 * Takes every token parameter out of a raw query, however its name is written (`token`, `%74oken`, `TOKEN`, `token+`,
 * after `;` as some servers split), keeping every other parameter byte for byte. The first one's value is the token.
 */
export function splitToken(rawQuery: string): { query: string; token: string | undefined } {
  if (rawQuery === '') return { query: rawQuery, token: undefined };
  let token: string | undefined;
  let removed = false;
  const kept: string[] = [];
  for (const part of rawQuery.split('&')) {
    let keptPart: string[] | undefined;
    const pieces = part.split(';');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      const eq = piece.indexOf('=');
      const name = eq < 0 ? piece : piece.slice(0, eq);
      if (isTokenName(name)) {
        removed = true;
        token ??= (eq < 0 ? '' : formDecode(piece.slice(eq + 1)).trim()) || undefined;
        keptPart ??= pieces.slice(0, i);
      } else {
        keptPart?.push(piece);
      }
    }
    const rest = keptPart ? keptPart.join(';') : part;
    if (!keptPart || rest !== '') kept.push(rest);
  }
  return removed ? { query: kept.join('&'), token } : { query: rawQuery, token: undefined };
}

function isTokenName(name: string): boolean {
  // Cheap test first: a name that is `token` in any spelling has 5 to 15 characters (`%74%6F%6B%65%6E` at most, with a
  // few spaces around).
  if (name.length < ACCESS_TOKEN_QUERY_PARAM.length || name.length > 40) return false;
  return formDecode(name).trim().toLowerCase() === ACCESS_TOKEN_QUERY_PARAM;
}

/** Decodes a query component as a form would (`+` is a space); an undecodable one stays as it is. */
function formDecode(text: string): string {
  const spaced = text.includes('+') ? text.replace(/\+/g, ' ') : text;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/** A query with the token put back (for the redirect that adds the trailing slash). */
export function rebuildQuery(query: string, token: string | undefined): string {
  const parts = [
    ...(query ? [query] : []),
    ...(token ? [`${ACCESS_TOKEN_QUERY_PARAM}=${encodeURIComponent(token)}`] : []),
  ];
  return parts.length ? `?${parts.join('&')}` : '';
}

// Both cookie functions walk the header with indexOf rather than split it into arrays: they run on every request.
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (let start = 0; start < header.length;) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq > start && eq < end && header.slice(start, eq).trim() === name) {
      return header.slice(eq + 1, end).trim() || undefined;
    }
    start = end + 1;
  }
  return undefined;
}

export function withoutCookie(header: string | undefined, name: string): string | undefined {
  if (!header || !header.includes(name)) return header;
  let kept = '';
  let count = 0;
  for (let start = 0; start <= header.length;) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const part = header.slice(start, end);
    // As `part.slice(0, part.indexOf('='))`: a part without `=` is compared without its last character.
    if (part.slice(0, part.indexOf('=')).trim() !== name)
      kept = count++ === 0 ? part.trim() : `${kept}; ${part.trim()}`;
    start = end + 1;
  }
  return kept || undefined;
}

/** The gitspace id of `<id>.<domain>[:port]`, if the Host names one. */
export function gitspaceOfHost(host: string | undefined, domainSuffix: string): string | undefined {
  if (!host) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, '');
  if (!name.endsWith(domainSuffix)) return undefined;
  const label = name.slice(0, -domainSuffix.length);
  return GITSPACE_ID_PATTERN.test(label) ? label : undefined;
}
