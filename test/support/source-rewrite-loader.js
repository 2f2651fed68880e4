/**
 * A webpack loader for tests that bundle a changed copy of the workflow code (test/support/workflow-variant.ts): it
 * applies each `{ find, replace }` to the source once and appends `append`, and fails the build when a `find` is not
 * in the source, so a test never passes on a change that did not happen.
 */
module.exports = function sourceRewriteLoader(source) {
  const { replacements = [], append = '' } = this.getOptions();
  let result = source;
  for (const { find, replace } of replacements) {
    if (!result.includes(find)) throw new Error(`${this.resourcePath}: '${find}' is not in the source`);
    result = result.replace(find, () => replace);
  }
  return `${result}\n${append}\n`;
};
