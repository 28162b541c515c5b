/**
 * Runs `work` every `intervalMs`, one run at a time (the next is timed from the end of the last),
 * until stopped; a failed run is reported to `onError` and the next one runs as planned. The
 * worker's periodic duties (the sweep, the expiry pass) are each one of these.
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly work: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    const tick = () => {
      this.running = this.work()
        .catch(this.onError)
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.intervalMs);
  }

  /** No run starts after this; resolves when the one under way (if any) ended. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
