/**
 * A task row as the live feed reads it (`TaskStore.get`, a notification's row), for the tests that
 * drive a `TaskFeed` by hand: `output` 3 and `finishedAt` once COMPLETED, `startedAt` once taken.
 */
export function feedRow(id: string, status: string, version: number, name = 'sum_two_numbers') {
  const taken = status !== 'PENDING';
  return {
    id,
    tenantId: 'acme',
    name,
    status,
    output: status === 'COMPLETED' ? 3 : null,
    error: null,
    attemptErrors: [],
    progress: null,
    version,
    attempts: taken ? 1 : 0,
    maxAttempts: 3,
    priority: 0,
    runAfter: null,
    cancelRequestedAt: null,
    createdAt: new Date(),
    startedAt: taken ? new Date() : null,
    finishedAt: status === 'COMPLETED' ? new Date() : null,
    updatedAt: new Date(),
  };
}
