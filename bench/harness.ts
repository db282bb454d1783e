/**
 * Side-by-side timing: each case runs in alternating rounds within one process, and each figure is
 * the median over rounds, so that a noisy neighbour slows every case alike and ratios stay fair.
 */
export interface BenchCase {
  readonly name: string;
  readonly run: () => unknown;
}

export interface BenchFigure {
  readonly name: string;
  /** Median time of one call, in microseconds. */
  readonly micros: number;
}

export function measure(
  cases: readonly BenchCase[],
  options: { rounds?: number; minRoundMillis?: number } = {},
): BenchFigure[] {
  const rounds = options.rounds ?? 15;
  const minRoundMillis = options.minRoundMillis ?? 40;
  // Calibrate: how many calls of each case fill one round.
  const iterations = cases.map((c) => {
    for (let i = 0; i < 50; i++) c.run();
    let n = 1;
    for (;;) {
      const start = performance.now();
      for (let i = 0; i < n; i++) c.run();
      if (performance.now() - start >= minRoundMillis) return n;
      n *= 2;
    }
  });
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    cases.forEach((c, i) => {
      const n = iterations[i] as number;
      const start = performance.now();
      for (let k = 0; k < n; k++) c.run();
      (samples[i] as number[]).push(((performance.now() - start) * 1000) / n);
    });
  }
  return cases.map((c, i) => ({ name: c.name, micros: median(samples[i] as number[]) }));
}

export interface AsyncBenchCase {
  readonly name: string;
  readonly run: () => Promise<unknown>;
}

/**
 * `measure` for asynchronous cases (awaited one call at a time), with its own warm-up and round
 * counts, for libraries whose calls take milliseconds: a few rounds already give a stable median.
 */
export async function measureAsync(
  cases: readonly AsyncBenchCase[],
  options: { rounds?: number; minRoundMillis?: number; warmup?: number } = {},
): Promise<BenchFigure[]> {
  const rounds = options.rounds ?? 7;
  const minRoundMillis = options.minRoundMillis ?? 40;
  const warmup = options.warmup ?? 3;
  const iterations: number[] = [];
  for (const c of cases) {
    for (let i = 0; i < warmup; i++) await c.run();
    let n = 1;
    for (;;) {
      const start = performance.now();
      for (let i = 0; i < n; i++) await c.run();
      if (performance.now() - start >= minRoundMillis) break;
      n *= 2;
    }
    iterations.push(n);
  }
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of cases.entries()) {
      const n = iterations[i] as number;
      const start = performance.now();
      for (let k = 0; k < n; k++) await c.run();
      (samples[i] as number[]).push(((performance.now() - start) * 1000) / n);
    }
  }
  return cases.map((c, i) => ({ name: c.name, micros: median(samples[i] as number[]) }));
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** A plain-text table: the first `leftColumns` columns are left-aligned, the rest (figures) right-aligned. */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  leftColumns = 1,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) =>
        i < leftColumns ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number),
      )
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
