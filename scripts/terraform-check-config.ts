/**
 * Reads a module's `infrastructure_request` output (the body of POST /api/v1/infrastructures, as `tofu output -json`
 * prints it) on standard input and validates it exactly as the API does: the request schema (api/schemas.ts), then
 * the provider's config schema (providers/*\/config.ts). Exits non-zero with the problems when the API would answer
 * 400. Used by scripts/terraform-test.sh.
 */
import { readFileSync } from 'node:fs';
import { CreateInfrastructureBody } from '../api/schemas';
import { validateInfrastructureConfig } from '../providers/validation';

const expectedProvider = process.argv[2];
const body: unknown = JSON.parse(readFileSync(0, 'utf8'));
const parsed = CreateInfrastructureBody.safeParse(body);
if (!parsed.success) {
  for (const issue of parsed.error.issues) console.error(`${issue.path.join('.') || '(body)'}: ${issue.message}`);
  process.exit(1);
}
if (expectedProvider && parsed.data.provider !== expectedProvider) {
  console.error(`provider is '${parsed.data.provider}', expected '${expectedProvider}'`);
  process.exit(1);
}
try {
  const config = validateInfrastructureConfig(parsed.data.provider, parsed.data.config);
  console.log(`the ${parsed.data.provider} config is valid: ${Object.keys(config).sort().join(', ')}`);
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
