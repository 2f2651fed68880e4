/** Custom search attributes (DESIGN.md §2), registered on the dev server and set by the API on every workflow. */
export const SEARCH_ATTRIBUTES = {
  gitspaceId: 'GitspaceId',
  action: 'GitspaceAction',
  infrastructureId: 'InfrastructureId',
  provider: 'GitspaceProvider',
} as const;

export const SEARCH_ATTRIBUTE_NAMES = Object.values(SEARCH_ATTRIBUTES);
