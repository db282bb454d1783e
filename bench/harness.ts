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
  const iterations = cases.map((c) => calibrate(c, minRoundMillis));
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++)
    cases.forEach((c, i) => (samples[i] as number[]).push(perCall(c, iterations[i] as number)));
  return cases.map((c, i) => ({ name: c.name, micros: median(samples[i] as number[]) }));
}

/** A case and the floor it is judged against. */
export interface BenchPair {
  readonly floor: BenchCase;
  readonly subject: BenchCase;
}

export interface PairedFigure {
  readonly floor: BenchFigure;
  readonly subject: BenchFigure;
  /** The median over rounds of subject ÷ the mean of the floor's runs just before and after it. */
  readonly ratio: number;
}

/**
 * `measure` for a ratio to a floor: each round runs every pair's floor, its subject, and its floor
 * again, so each round's ratio compares runs a few milliseconds apart and a neighbour's load that
 * drifts between rounds cancels out; the ratio is the median of those per-round ratios.
 */
export function measurePaired(
  pairs: readonly BenchPair[],
  options: { rounds?: number; minRoundMillis?: number } = {},
): PairedFigure[] {
  const rounds = options.rounds ?? 61;
  const minRoundMillis = options.minRoundMillis ?? 20;
  const iterations = pairs.map(({ floor, subject }) => [
    calibrate(floor, minRoundMillis),
    calibrate(subject, minRoundMillis),
  ]);
  const samples = pairs.map(() => ({
    floor: [] as number[],
    subject: [] as number[],
    ratio: [] as number[],
  }));
  for (let r = 0; r < rounds; r++) {
    pairs.forEach(({ floor, subject }, i) => {
      const [nf, ns] = iterations[i] as [number, number];
      const before = perCall(floor, nf);
      const micros = perCall(subject, ns);
      const after = perCall(floor, nf);
      const sample = samples[i] as { floor: number[]; subject: number[]; ratio: number[] };
      sample.floor.push(before, after);
      sample.subject.push(micros);
      sample.ratio.push((2 * micros) / (before + after));
    });
  }
  return pairs.map(({ floor, subject }, i) => {
    const sample = samples[i] as { floor: number[]; subject: number[]; ratio: number[] };
    return {
      floor: { name: floor.name, micros: median(sample.floor) },
      subject: { name: subject.name, micros: median(sample.subject) },
      ratio: median(sample.ratio),
    };
  });
}

/** Microseconds per call of `c`, over `n` calls in a row. */
function perCall(c: BenchCase, n: number): number {
  const start = performance.now();
  for (let k = 0; k < n; k++) c.run();
  return ((performance.now() - start) * 1000) / n;
}

/** How many calls of `c` fill `minRoundMillis`, after 50 calls of warm-up. */
function calibrate(c: BenchCase, minRoundMillis: number): number {
  for (let i = 0; i < 50; i++) c.run();
  let n = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < n; i++) c.run();
    if (performance.now() - start >= minRoundMillis) return n;
    n *= 2;
  }
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
