/**
 * Retrying a cloud call a few times inside one activity attempt, for SDKs that do not do it themselves for the calls
 * we need (the Compute REST client treats insert/start/stop/delete as non-idempotent; our request ids make them safe).
 */
import type { Logger } from '../common/logger';
import { ProviderError } from '../contracts/provider-errors';

export interface RetryOptions {
  signal: AbortSignal;
  logger: Logger;
  /** What is being tried, for the log. */
  what: string;
  attempts?: number;
  baseDelayMs?: number;
}

/**
 * Runs `call` until it succeeds, throws an error that is not a retryable RateLimitedError/ProviderUnavailableError,
 * or the attempts are used up (then the last error goes to Temporal, which retries the activity). Capacity errors are
 * not retried here: capacity rarely comes back within seconds.
 */
export async function retryTransient<T>(call: () => Promise<T>, options: RetryOptions): Promise<T> {
  const attempts = options.attempts ?? 4;
  const base = options.baseDelayMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    options.signal.throwIfAborted();
    try {
      return await call();
    } catch (error) {
      const transient =
        error instanceof ProviderError &&
        (error.name === 'RateLimitedError' || error.name === 'ProviderUnavailableError');
      if (!transient || attempt >= attempts) throw error;
      // Exponential backoff with full jitter.
      const delay = Math.random() * base * 2 ** (attempt - 1);
      options.logger.debug('transient cloud error, retrying', { what: options.what, attempt, delay, error });
      await sleep(delay, options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
