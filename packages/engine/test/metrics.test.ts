import { taskNames } from '@tasker/tasks';
import { describe, expect, it } from 'vitest';
import { TaskerMetrics } from '../src/index.ts';

describe('TaskerMetrics', () => {
  it("has every task type's outcome counters at zero before the first task, EXPIRED's included", async () => {
    const { body } = await new TaskerMetrics().scrape();
    for (const name of taskNames) {
      for (const outcome of ['created', 'completed', 'failed', 'cancelled', 'expired', 'debounced'])
        expect(body).toContain(`tasker_tasks_${outcome}_total{task_type="${name}"} 0`);
    }
  });
});
