/** Nothing is shared across test files: each stops what it started. */
export default async function globalTeardown(): Promise<void> {}
