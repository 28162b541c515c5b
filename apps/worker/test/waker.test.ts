import { describe, expect, it } from 'vitest';
import { Waker } from '../src/waker.ts';

// The waker wakes on the leading dispatcher's worker only: one pass a tick for the whole cluster,
// and it moves with the leadership (the failover itself: steps.test.ts, a SIGKILLed leader).

const quiet = { debug: () => {}, warn: () => {} };
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Waker', () => {
  it('passes only while its worker leads, every interval, and stops passing when it no longer leads', async () => {
    let passes = 0;
    let leading = false;
    const waker = new Waker(
      {
        wake: async () => {
          passes++;
          return 0;
        },
      },
      20,
      () => leading,
      quiet,
    );
    waker.start();
    try {
      await tick(150);
      expect(passes).toBe(0); // a worker that does not lead scans nothing
      leading = true;
      await tick(150);
      expect(passes).toBeGreaterThanOrEqual(3);
      leading = false;
      await tick(40); // a pass under way when the leadership went may still end
      const after = passes;
      await tick(150);
      expect(passes).toBe(after);
    } finally {
      await waker.stop();
    }
  });
});
