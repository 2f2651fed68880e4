/** The one place that decides what an EC2 error means (DESIGN.md §5 taxonomy). */
import {
  CapacityUnavailableError,
  InvalidMachineSpecError,
  ProviderAuthError,
  ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
  RateLimitedError,
} from '../../contracts/provider-errors';

const PROVIDER = 'aws';

const QUOTA = new Set([
  'InstanceLimitExceeded',
  'VcpuLimitExceeded',
  'VolumeLimitExceeded',
  'MaxIOPSLimitExceeded',
  'ResourceLimitExceeded',
]);
const CAPACITY = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'InsufficientHostCapacity',
  'InsufficientVolumeCapacity',
  'InsufficientAddressCapacity',
]);
const THROTTLING = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException']);
const AUTH = new Set([
  'AuthFailure',
  'UnauthorizedOperation',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'RequestExpired',
  'OptInRequired',
  'Blocked',
  'CredentialsProviderError',
]);
const UNAVAILABLE = new Set(['InternalError', 'InternalFailure', 'ServiceUnavailable', 'Unavailable']);
// Errors about what the infrastructure or machine asks for: no retry can fix them.
const INVALID_SPEC = [
  /^InvalidParameterValue$/,
  /^InvalidParameterCombination$/,
  /^InvalidInstanceType/,
  /^InvalidAMIID\./,
  /^InvalidBlockDeviceMapping$/,
  /^InvalidSubnetID\./,
  /^InvalidGroup\./,
  /^InvalidKeyPair\./,
  /^InvalidUserData\./,
  /^Unsupported$/,
  /^NoSuchEntity$/,
  /^InvalidIamInstanceProfile/,
];

/** EC2 error codes meaning "that instance or volume does not exist" (callers treat them as already gone). */
export function isAwsNotFound(error: unknown): boolean {
  const code = awsErrorCode(error);
  return (
    code !== undefined && /^Invalid(Instance|Volume)ID\.(NotFound|Malformed)$|^InvalidVolume\.NotFound$/.test(code)
  );
}

/**
 * Maps an error thrown by `@aws-sdk/client-ec2` onto the provider taxonomy. Unknown errors come back unchanged, which
 * the activity layer treats as retryable.
 */
export function mapAwsError(error: unknown): Error {
  if (error instanceof ProviderError) return error;
  const code = awsErrorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const status = httpStatus(error);
  const options = { cause: error };
  if (code !== undefined) {
    if (QUOTA.has(code)) {
      return new QuotaExceededError(
        `AWS quota exceeded (${code}): ${message}. Raise the quota or use a smaller machine.`,
        PROVIDER,
        options,
      );
    }
    if (CAPACITY.has(code))
      return new CapacityUnavailableError(`AWS has no capacity right now (${code}): ${message}`, PROVIDER, options);
    if (THROTTLING.has(code))
      return new RateLimitedError(`AWS throttled the request (${code}): ${message}`, PROVIDER, options);
    if (AUTH.has(code)) {
      return new ProviderAuthError(
        `the runner's AWS credentials were refused (${code}): ${message}. Check the credentials and the IAM policy of the runner.`,
        PROVIDER,
        options,
      );
    }
    if (INVALID_SPEC.some((pattern) => pattern.test(code))) {
      return new InvalidMachineSpecError(`AWS refused the machine (${code}): ${message}`, PROVIDER, options);
    }
    if (UNAVAILABLE.has(code))
      return new ProviderUnavailableError(`AWS is unavailable (${code}): ${message}`, PROVIDER, options);
  }
  if (status === 429) return new RateLimitedError(`AWS throttled the request: ${message}`, PROVIDER, options);
  if (status !== undefined && status >= 500) {
    return new ProviderUnavailableError(`AWS answered ${status}: ${message}`, PROVIDER, options);
  }
  if (status === undefined && isNetworkError(error)) {
    return new ProviderUnavailableError(`AWS could not be reached: ${message}`, PROVIDER, options);
  }
  return error instanceof Error ? error : new Error(message);
}

/** The EC2 error code (`Code` in the XML answer, `name` on SDK exceptions). */
export function awsErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const record = error as { Code?: unknown; name?: unknown };
  if (typeof record.Code === 'string') return record.Code;
  return typeof record.name === 'string' && record.name !== 'Error' ? record.name : undefined;
}

function httpStatus(error: unknown): number | undefined {
  const metadata = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata;
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EAI_AGAIN|ENOTFOUND)$/.test(code)) ||
    (error instanceof Error && /TimeoutError|socket hang up/.test(`${error.name} ${error.message}`))
  );
}
