export interface BatcherOptions {
  /** Most items in one batch. */
  maxSize: number;
}

/**
 * What a batch answers for one item that failed on its own (the others of the batch were done):
 * that caller's promise rejects with `error`, the others resolve.
 */
export class ItemFailure {
  constructor(readonly error: unknown) {}
}

interface Pending<In, Out> {
  item: In;
  resolve(value: Out): void;
  reject(error: unknown): void;
}

/**
 * Group commit: calls made while the event loop is busy with other work are gathered and run as
 * one statement, so that 50 tasks finishing together cost one round trip and one commit instead
 * of 50. Each caller still gets its own result. An item whose key is already in the gathering
 * batch waits for the next one, so that calls on one row keep their one-at-a-time meaning.
 */
export class Batcher<In, Out> {
  private current: Pending<In, Out>[] = [];
  private keys = new Set<string>();
  private overflow: Pending<In, Out>[] = [];
  private scheduled = false;

  constructor(
    private readonly run: (items: In[]) => Promise<(Out | ItemFailure)[]>,
    private readonly key: (item: In) => string,
    private readonly options: BatcherOptions,
  ) {}

  add(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.place({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private place(pending: Pending<In, Out>) {
    const key = this.key(pending.item);
    if (this.keys.has(key) || this.current.length >= this.options.maxSize) {
      this.overflow.push(pending);
    } else {
      this.keys.add(key);
      this.current.push(pending);
    }
  }

  private flush() {
    const batch = this.current;
    this.current = [];
    this.keys.clear();
    this.scheduled = false;
    const waiting = this.overflow;
    this.overflow = [];
    for (const pending of waiting) this.place(pending);
    if (this.current.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    if (batch.length === 0) return;
    this.run(batch.map((p) => p.item)).then(
      (results) => {
        for (const [i, p] of batch.entries()) {
          const result = results[i];
          if (result instanceof ItemFailure) p.reject(result.error);
          else p.resolve(result as Out);
        }
      },
      (error: unknown) => {
        for (const p of batch) p.reject(error);
      },
    );
  }
}
