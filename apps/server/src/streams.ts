import type { Logger } from '@tasker/engine';
import type { Identity } from './auth.ts';

/**
 * Bytes of events one stream may have waiting for its client (in the feed's inbox: the writes
 * themselves wait for the socket to drain). Past it the client is not reading: it is dropped.
 */
export const STREAM_BUFFER_BYTES = 1024 * 1024;
/** Events one stream may have waiting, whatever their size. */
export const STREAM_BUFFER_EVENTS = 1024;
/** How often the keys holding streams open are read again: a revoked or expired key's streams end within this (and a query). */
export const STREAM_KEY_CHECK_MS = 1000;

/**
 * Why the server ended a stream, as the one error shape's status and words. 503: the server shuts
 * down; the client reconnects (to another server) and resumes with its last event id.
 */
export interface StreamEnd {
  status: 401 | 429 | 503;
  message: string;
}

/** The end of every stream of a server that shuts down (`StreamGate.drain`). */
export const DRAINED: StreamEnd = {
  status: 503,
  message: 'This server is shutting down: reconnect, with the last event id, to resume on another',
};

/** One open stream's place: its signal, and why the server ended it, if it did. */
export interface StreamLease {
  /** Aborts when the client goes away (the signal given to `open`) or the server ends the stream. */
  readonly signal: AbortSignal;
  /** Why the server ended it (a revoked or expired key, a client that stopped reading), if it did. */
  ended(): StreamEnd | undefined;
  /** The client stopped reading (its events passed the bound): end the stream and cut the connection. */
  overflow(): void;
  /** The stream is over: its slot is free again. Idempotent. */
  release(): void;
}

/** Who opens a stream: its key, or without one (AUTH_MODE=disabled) its address. */
export interface StreamCaller {
  identity: Identity;
  ip: string;
  /** Cuts the client's connection (for a client that no longer reads). */
  drop(): void;
}

/** What the SSE route and the subscriptions need (a plain type: see trpc.ts). */
export interface StreamGate {
  /** A slot for one more stream of this caller, or a 429 when it holds MAX_STREAMS_PER_KEY already. */
  open(caller: StreamCaller, signal: AbortSignal): StreamLease | { refusal: StreamEnd };
  /**
   * Server shutdown: ends every open stream (`DRAINED`), and every stream opened from now on at
   * once (after its head: the client gets a reconnect hint, not an error).
   */
  drain(): void;
  /** Whether `drain` was called. */
  readonly draining: boolean;
}

interface Lease extends StreamLease {
  keyId: string | null;
  end(reason: StreamEnd): void;
}

export interface StreamGateOptions {
  /** MAX_STREAMS_PER_KEY. */
  maxPerCaller: number;
  checkMs?: number;
}

/**
 * The open streams of this server process, SSE and tRPC subscriptions alike: at most
 * `maxPerCaller` per API key (per client IP without one), and none that outlives its key: every
 * STREAM_KEY_CHECK_MS the keys holding streams are read again (one query for all), and the streams
 * of a revoked or expired key end with a 401.
 */
export class OpenStreams implements StreamGate {
  private readonly perCaller = new Map<string, number>();
  private readonly leases = new Set<Lease>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private drained = false;

  constructor(
    private readonly keys: { unusable(ids: readonly string[]): Promise<{ id: string; reason: string }[]> },
    private readonly options: StreamGateOptions,
    private readonly log: Logger,
  ) {}

  /** Streams open now. */
  get size(): number {
    return this.leases.size;
  }

  get draining(): boolean {
    return this.drained;
  }

  drain(): void {
    this.drained = true;
    for (const lease of this.leases) lease.end(DRAINED);
  }

  open(caller: StreamCaller, signal: AbortSignal): StreamLease | { refusal: StreamEnd } {
    const { keyId } = caller.identity;
    const slot = keyId ? `key:${keyId}` : `ip:${caller.ip}`;
    const held = this.perCaller.get(slot) ?? 0;
    if (held >= this.options.maxPerCaller) {
      const who = keyId ? 'this API key' : 'this client address';
      return {
        refusal: {
          status: 429,
          message: `Too many open streams for ${who}: at most ${this.options.maxPerCaller} (MAX_STREAMS_PER_KEY) on one server; close one first`,
        },
      };
    }
    this.perCaller.set(slot, held + 1);
    const controller = new AbortController();
    const onClientGone = () => controller.abort();
    signal.addEventListener('abort', onClientGone, { once: true });
    if (signal.aborted) controller.abort();
    let reason: StreamEnd | undefined;
    let released = false;
    const lease: Lease = {
      keyId,
      signal: controller.signal,
      ended: () => reason,
      end: (why) => {
        reason ??= why;
        controller.abort();
      },
      overflow: () => {
        if (reason) return;
        lease.end({ status: 429, message: 'The client did not read its events: the stream was dropped' });
        caller.drop();
      },
      release: () => {
        if (released) return;
        released = true;
        signal.removeEventListener('abort', onClientGone);
        this.leases.delete(lease);
        const left = (this.perCaller.get(slot) ?? 1) - 1;
        if (left > 0) this.perCaller.set(slot, left);
        else this.perCaller.delete(slot);
        if (this.leases.size === 0) this.stopChecking();
      },
    };
    this.leases.add(lease);
    if (this.drained) lease.end(DRAINED);
    else if (keyId) this.startChecking();
    return lease;
  }

  private startChecking() {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.options.checkMs ?? STREAM_KEY_CHECK_MS);
    this.timer.unref();
  }

  private stopChecking() {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Ends the streams of the keys that no longer let anyone in. */
  private async check() {
    if (this.checking) return;
    this.checking = true;
    try {
      const ids = [...new Set([...this.leases].flatMap((l) => (l.keyId ? [l.keyId] : [])))];
      if (ids.length === 0) return;
      const gone = new Map((await this.keys.unusable(ids)).map((k) => [k.id, k.reason]));
      for (const lease of this.leases) {
        const why = lease.keyId ? gone.get(lease.keyId) : undefined;
        if (why)
          lease.end({
            status: 401,
            message: `This API key ${why === 'expired' ? 'has expired' : 'was revoked'}`,
          });
      }
    } catch (error) {
      // PostgreSQL away: try again at the next tick; the streams go on meanwhile.
      this.log.warn({ err: error }, 'could not check the keys of open streams');
    } finally {
      this.checking = false;
    }
  }

  /** Server shutdown: no more checks (the streams themselves are cut by app.ts). */
  close(): void {
    this.stopChecking();
  }
}
