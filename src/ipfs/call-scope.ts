/**
 * One client call's lifetime, across its retries: the caller's AbortSignal and the
 * call's total deadline folded into one internal signal whose `reason` is always an
 * SgError (TIMEOUT or ABORTED), so everything below just throws `signal.reason`.
 */
import { SgError, type ErrorContext } from '../errors.js';

/** setTimeout overflows past 2^31-1 ms and then fires at once; clamp long deadlines. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class CallScope {
  private readonly ctrl = new AbortController();
  readonly signal = this.ctrl.signal;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly caller: AbortSignal | undefined,
    totalMs: number,
    private readonly context: ErrorContext,
  ) {
    if (caller?.aborted) {
      this.onCallerAbort();
    } else {
      caller?.addEventListener('abort', this.onCallerAbort, { once: true });
    }
    if (Number.isFinite(totalMs) && totalMs > 0 && !this.signal.aborted) {
      const ms = Math.min(totalMs, MAX_TIMER_MS);
      this.timer = setTimeout(() => this.ctrl.abort(new SgError('TIMEOUT', `IPFS call took longer than ${ms} ms`, { ...context, timeoutMs: ms })), ms);
      this.timer.unref();
    }
  }

  /** Waits `ms`, or rejects with the scope's reason as soon as it aborts. */
  sleep(ms: number): Promise<void> {
    this.signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(t);
        reject(this.signal.reason);
      };
      const t = setTimeout(() => {
        this.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      this.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.caller?.removeEventListener('abort', this.onCallerAbort);
  }

  private readonly onCallerAbort = (): void => {
    const reason: unknown = this.caller?.reason;
    if (reason instanceof SgError) {
      this.ctrl.abort(reason);
    } else if (reason instanceof DOMException && reason.name === 'TimeoutError') {
      this.ctrl.abort(new SgError('TIMEOUT', "caller's deadline passed during IPFS call", this.context, { cause: reason }));
    } else {
      this.ctrl.abort(new SgError('ABORTED', 'IPFS call cancelled', this.context, { cause: reason }));
    }
  };
}
