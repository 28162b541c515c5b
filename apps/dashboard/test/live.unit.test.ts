import { describe, expect, it } from 'vitest';
import { HeardEvents } from '../src/live.ts';

// No browser, no server: what the tasks table lays over a page read before the events it heard.

interface Row {
  id: string;
  version: number;
  status: string;
}
const apply = (row: Row, event: Row): Row => ({ ...row, version: event.version, status: event.status });

describe('HeardEvents', () => {
  it('lays a newer event over a row read before it (a refetch answered after the change): CI saw a cancelled task stay "cancelling"', () => {
    const heard = new HeardEvents<Row>();
    heard.add({ id: 'a', version: 4, status: 'RUNNING' });
    heard.add({ id: 'a', version: 5, status: 'CANCELLED' });
    heard.add({ id: 'a', version: 4, status: 'RUNNING' }); // late and older: ignored
    const page = [
      { id: 'a', version: 4, status: 'RUNNING' },
      { id: 'b', version: 2, status: 'PENDING' },
    ];
    expect(heard.newest(page, apply)).toEqual([
      { id: 'a', version: 5, status: 'CANCELLED' },
      { id: 'b', version: 2, status: 'PENDING' },
    ]);
  });

  it('keeps a row read after the event as it is (a retry read back: version 6 over the heard 5)', () => {
    const heard = new HeardEvents<Row>();
    heard.add({ id: 'a', version: 5, status: 'CANCELLED' });
    const page = [{ id: 'a', version: 6, status: 'PENDING' }];
    expect(heard.newest(page, apply)).toEqual(page);
  });

  it('keeps the last `kept` tasks heard of', () => {
    const heard = new HeardEvents<Row>(2);
    for (const id of ['a', 'b', 'c']) heard.add({ id, version: 9, status: 'COMPLETED' });
    const page = ['a', 'b', 'c'].map((id) => ({ id, version: 1, status: 'PENDING' }));
    expect(heard.newest(page, apply).map((r) => r.status)).toEqual(['PENDING', 'COMPLETED', 'COMPLETED']);
  });
});
