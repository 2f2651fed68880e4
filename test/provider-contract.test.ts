/**
 * The provider contract (test/support/provider-contract.ts) against every provider: `aws` on moto, `gcp` on the
 * in-repo fake of the Compute API, and `local` on this host. A new provider is one more target here.
 */
import { providerContract, type ContractTarget } from './support/provider-contract';
import { awsOnMoto } from './support/provider-contract-aws';
import { gcpOnFakeCompute } from './support/provider-contract-gcp';
import { localOnThisHost } from './support/provider-contract-local';

const TARGETS: ContractTarget[] = [awsOnMoto, gcpOnFakeCompute, localOnThisHost];

describe.each(TARGETS)('provider contract: $name', (target) => providerContract(target));
