import type { Logger } from '../common/logger';
import { createLocalProvider } from './local/provider';
import type { Provider, ProviderName } from './types';

export interface ProviderResolverOptions {
  /** Where the local provider keeps machine directories. */
  localRoot: string;
  installationId: string;
  logger: Logger;
}

/**
 * Builds providers on demand from an infrastructure's provider name and config (which travel in the workflow's
 * activity input), with the runner's own credentials; one instance per distinct config.
 */
export function createProviderResolver(options: ProviderResolverOptions) {
  const cache = new Map<string, Provider>();
  return (infrastructure: { provider: ProviderName; providerConfig: Record<string, unknown> }): Provider => {
    const key = `${infrastructure.provider}:${JSON.stringify(infrastructure.providerConfig)}`;
    let provider = cache.get(key);
    if (!provider) {
      provider = build(infrastructure.provider, options);
      cache.set(key, provider);
    }
    return provider;
  };
}

function build(name: ProviderName, options: ProviderResolverOptions): Provider {
  switch (name) {
    case 'local':
      return createLocalProvider({ rootDir: options.localRoot, logger: options.logger.child('local') });
    default:
      throw new Error(`provider '${name}' is not available in this runner`);
  }
}
