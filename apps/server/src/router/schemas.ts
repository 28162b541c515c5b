import { z } from 'zod';

/** A task id in a route or input. */
export const taskUuid = z.uuid().describe('The id returned by run-task');
