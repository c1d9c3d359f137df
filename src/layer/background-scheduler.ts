/**
 * One scheduler per daemon for background work (whole-layer fetch), with upstream's
 * priorities: on-demand reads come first. Background tasks start only after no foreground
 * work has run for `quietMs`; at most `maxConcurrency` run at once; a foreground read
 * aborts the running ones, which are retried once things are quiet again.
 *
 * Beyond upstream: foreground work that never pauses (a container reading thousands of
 * small files one after another, each a round trip to IPFS) would starve background work
 * for as long as it lasts, although the whole layer would arrive in a moment. After
 * `starveMs` of unbroken foreground activity one background task runs alongside it and is
 * not preempted, so such a reader soon finds everything local.
 */
export type BackgroundTask = (signal: AbortSignal) => Promise<void>;

interface Entry {
  readonly task: BackgroundTask;
  readonly done: (err?: unknown) => void;
  /** Failures not caused by preemption; the task is given up after MAX_FAILURES. */
  failures: number;
}

const MAX_FAILURES = 3;

interface Running {
  readonly ctl: AbortController;
  /** Started while foreground work went on (the starvation guard): not preempted. */
  readonly alongside: boolean;
}

export class BackgroundScheduler {
  private readonly queue: Entry[] = [];
  private readonly running = new Map<Entry, Running>();
  private lastForeground = 0;
  /** Start of the current stretch of foreground activity (gaps shorter than quietMs). */
  private busySince = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly maxConcurrency: number,
    private readonly quietMs: number,
    private readonly starveMs = Infinity,
  ) {}

  /** Marks foreground activity: pauses background work for `quietMs`. */
  foreground(): void {
    const now = Date.now();
    if (now - this.lastForeground >= this.quietMs) this.busySince = now;
    this.lastForeground = now;
    for (const r of this.running.values()) if (!r.alongside) r.ctl.abort(new Error('preempted by a foreground read'));
    this.kick();
  }

  /** Runs `task` in the background; resolves when it finally succeeds, rejects only when closed. */
  submit(task: BackgroundTask): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('scheduler closed'));
      this.queue.push({ task, done: (err) => (err ? reject(err) : resolve()), failures: 0 });
      this.kick();
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const r of this.running.values()) r.ctl.abort(new Error('scheduler closed'));
    for (const e of this.queue.splice(0)) e.done(new Error('scheduler closed'));
  }

  private kick(): void {
    if (this.closed || this.queue.length === 0) return;
    const now = Date.now();
    const quietIn = this.lastForeground + this.quietMs - now;
    const starvedIn = this.busySince + this.starveMs - now;
    // Quiet: full concurrency. Busy for long: one task alongside. Else wait for either.
    const allowed = quietIn <= 0 ? this.maxConcurrency : starvedIn <= 0 ? Math.min(1, this.maxConcurrency) : 0;
    if (this.running.size >= allowed) {
      // Not quiet yet: look again when it is, or when the starvation guard opens first.
      const wait = quietIn <= 0 ? 0 : starvedIn > 0 ? Math.min(quietIn, starvedIn) : quietIn;
      if (wait > 0) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.kick(), wait);
      }
      return;
    }
    while (this.queue.length > 0 && this.running.size < allowed) {
      const entry = this.queue.shift()!;
      const ctl = new AbortController();
      this.running.set(entry, { ctl, alongside: quietIn > 0 });
      entry.task(ctl.signal).then(
        () => {
          this.running.delete(entry);
          entry.done();
          this.kick();
        },
        (err: unknown) => {
          this.running.delete(entry);
          if (!ctl.signal.aborted) entry.failures++;
          if (this.closed) entry.done(new Error('scheduler closed'));
          else if (entry.failures >= MAX_FAILURES) entry.done(err);
          // Preempted, or failed fewer times than allowed: retried after the next quiet period.
          else this.queue.push(entry);
          this.kick();
        },
      );
    }
  }
}
