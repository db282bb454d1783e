/**
 * A tracer and a meter of the real OpenTelemetry SDK, each with an in-memory reader: finished spans
 * from InMemorySpanExporter, metric points collected on demand from a MetricReader. Nothing is
 * registered globally.
 */
import { SpanStatusCode, type Attributes, type Meter, type Tracer } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace-base";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";

class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface Point {
  readonly attributes: Attributes;
  /** A sum's value, or a histogram's { count, sum, min, max }. */
  readonly value: number | { count: number; sum?: number; min?: number; max?: number };
}

export interface Collected {
  readonly unit: string;
  readonly points: readonly Point[];
}

export class TestTelemetry {
  readonly #exporter = new InMemorySpanExporter();
  readonly #reader = new CollectingReader();
  readonly #tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(this.#exporter)],
  });
  readonly #meterProvider = new MeterProvider({ readers: [this.#reader] });
  // The only own keys: a TestTelemetry is itself the { tracer, meter } the instrumentations take.
  readonly tracer: Tracer = this.#tracerProvider.getTracer("test");
  readonly meter: Meter = this.#meterProvider.getMeter("test");

  /** For registering globally (the default tracer and meter). */
  get tracerProvider(): BasicTracerProvider {
    return this.#tracerProvider;
  }

  get meterProvider(): MeterProvider {
    return this.#meterProvider;
  }

  /** Finished spans, in the order they ended; only those named `name` when given. */
  spans(name?: string): ReadableSpan[] {
    const all = this.#exporter.getFinishedSpans();
    return name === undefined ? all : all.filter((s) => s.name === name);
  }

  /** The one finished span named `name` (fails the test if there is not exactly one). */
  span(name: string): ReadableSpan {
    const found = this.spans(name);
    if (found.length !== 1)
      throw new Error(
        `expected one span "${name}", got ${found.length} (${this.spans()
          .map((s) => s.name)
          .join(", ")})`,
      );
    return found[0] as ReadableSpan;
  }

  /** A metric's unit and points (cumulative), or undefined when nothing was recorded on it. */
  async metric(name: string): Promise<Collected | undefined> {
    const { resourceMetrics, errors } = await this.#reader.collect();
    if (errors.length > 0) throw errors[0];
    for (const scope of resourceMetrics.scopeMetrics)
      for (const metric of scope.metrics)
        if (metric.descriptor.name === name)
          return {
            unit: metric.descriptor.unit,
            points: metric.dataPoints.map((p) => ({
              attributes: p.attributes,
              value: p.value as Point["value"],
            })),
          };
    return undefined;
  }

  /** The sum of a counter's points whose attributes include `where`. */
  async sum(name: string, where: Attributes = {}): Promise<number> {
    const metric = await this.metric(name);
    let total = 0;
    for (const point of metric?.points ?? [])
      if (Object.entries(where).every(([k, v]) => point.attributes[k] === v))
        total += point.value as number;
    return total;
  }
}

/** A span's parent span id, or undefined for a root span. */
export function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

export function idOf(span: ReadableSpan): string {
  return span.spanContext().spanId;
}

export const ERROR = SpanStatusCode.ERROR;
export const UNSET = SpanStatusCode.UNSET;
