/**
 * A circuit breaker per provider, so that a provider that is down or throttling is not hammered
 * and callers learn at once (`PROVIDER_OPEN`) that they should fail over.
 *
 *   closed ──(N consecutive failures, or too many 429s or 5xx within the window)──▶ open
 *   open ──(cool-down passed; the next call is the one probe)──▶ half-open
 *   half-open ──(probe answered)──▶ closed      half-open ──(probe failed)──▶ open
 *
 * A failure is a network error, a 429 or a 5xx. Any other answer, a 4xx included, shows the
 * provider is up and counts as a success. A call the caller aborted before any answer counts as
 * neither. While half-open, only the probe is let through; everything else is denied until it ends.
 */
import { functionOption, integerOption, optionsOf, shown } from "./options.js";

/** The longest cool-down a provider's `retry-after` can ask for (docs/metering.md, "Circuit breaker"). */
const MAX_RETRY_AFTER_MS = 3_600_000;

export type BreakerState = "closed" | "open" | "half-open";

const OUTCOMES = ["success", "network-error", "rate-limited", "server-error", "aborted"] as const;
export type BreakerOutcome = (typeof OUTCOMES)[number];

export interface BreakerOptions {
  /** Consecutive failures (any kind) that open the circuit. Default 5. */
  readonly maxConsecutiveFailures?: number;
  /** 429s within `windowMs` that open it. Default 5. */
  readonly maxRateLimited?: number;
  /** 5xx within `windowMs` that open it. Default 5. */
  readonly maxServerErrors?: number;
  /** Default 60,000. */
  readonly windowMs?: number;
  /** How long the circuit stays open before a probe; a 429's longer `retry-after` wins. Default 30,000. */
  readonly coolDownMs?: number;
  /** The clock in epoch milliseconds. */
  readonly now?: () => number;
}

export interface BreakerSnapshot {
  readonly state: BreakerState;
  readonly consecutiveFailures: number;
  /** 429s and 5xx within the current window. */
  readonly rateLimited: number;
  readonly serverErrors: number;
  /** While open: when a probe will be let through (epoch ms). */
  readonly openUntil?: number;
  /** How many times the circuit has opened. */
  readonly opened: number;
}

export type BreakerPermit =
  | { readonly ok: true; readonly probe: boolean }
  | { readonly ok: false; readonly retryAfterMs: number };

interface Circuit {
  state: BreakerState;
  consecutive: number;
  rateLimited: number[];
  serverErrors: number[];
  openUntil: number;
  probing: boolean;
  opened: number;
}

export class CircuitBreaker {
  readonly #circuits = new Map<string, Circuit>();
  readonly #maxConsecutive: number;
  readonly #maxRateLimited: number;
  readonly #maxServerErrors: number;
  readonly #windowMs: number;
  readonly #coolDownMs: number;
  readonly #now: () => number;

  constructor(options?: BreakerOptions) {
    const o = optionsOf(options, "breaker options", [
      "maxConsecutiveFailures",
      "maxRateLimited",
      "maxServerErrors",
      "windowMs",
      "coolDownMs",
      "now",
    ]);
    this.#maxConsecutive = integerOption(o.maxConsecutiveFailures, "maxConsecutiveFailures", 5, 1);
    this.#maxRateLimited = integerOption(o.maxRateLimited, "maxRateLimited", 5, 1);
    this.#maxServerErrors = integerOption(o.maxServerErrors, "maxServerErrors", 5, 1);
    this.#windowMs = integerOption(o.windowMs, "windowMs", 60_000, 1);
    this.#coolDownMs = integerOption(o.coolDownMs, "coolDownMs", 30_000, 1);
    this.#now = functionOption(o.now, "now") ?? Date.now;
  }

  /** Asks to call `provider`. A permit with `probe` must be followed by `record(…, true)`. */
  acquire(provider: string): BreakerPermit {
    checkProvider(provider);
    const circuit = this.#circuits.get(provider);
    if (circuit === undefined || circuit.state === "closed") return CLOSED_PERMIT;
    const now = this.#clock();
    if (circuit.state === "open") {
      if (now < circuit.openUntil) return { ok: false, retryAfterMs: circuit.openUntil - now };
      circuit.state = "half-open";
      circuit.probing = false;
    }
    if (circuit.probing) return { ok: false, retryAfterMs: this.#coolDownMs };
    circuit.probing = true;
    return PROBE_PERMIT;
  }

  /** Reports how a permitted call ended. `retryAfterMs`: a 429's `retry-after`, which lengthens the cool-down. */
  record(provider: string, outcome: BreakerOutcome, probe: boolean, retryAfterMs?: number): void {
    checkProvider(provider);
    // Checked before anything changes. An unknown outcome is not counted as some failure, a probe
    // that is not a boolean would not hand its turn back, and a NaN retry-after would open the
    // circuit until NaN: at once half-open.
    if (!(OUTCOMES as readonly unknown[]).includes(outcome))
      throw new TypeError(
        `"outcome" expected one of ${OUTCOMES.join(", ")}, got ${shown(outcome)}`,
      );
    if (typeof probe !== "boolean")
      throw new TypeError(`"probe" expected a boolean, got ${shown(probe)}`);
    if (
      retryAfterMs !== undefined &&
      (typeof retryAfterMs !== "number" || !Number.isFinite(retryAfterMs) || retryAfterMs < 0)
    )
      throw new RangeError(
        `"retryAfterMs" expected a non-negative number of milliseconds, got ${shown(retryAfterMs)}`,
      );
    const circuit = this.#circuit(provider);
    const now = this.#clock();
    if (probe) circuit.probing = false;
    if (outcome === "aborted") return;
    if (outcome === "success") {
      circuit.consecutive = 0;
      if (circuit.state === "half-open" && probe) {
        circuit.state = "closed";
        circuit.rateLimited = [];
        circuit.serverErrors = [];
      }
      return;
    }
    circuit.consecutive++;
    const since = now - this.#windowMs;
    if (outcome === "rate-limited")
      circuit.rateLimited = [...circuit.rateLimited.filter((t) => t > since), now];
    if (outcome === "server-error")
      circuit.serverErrors = [...circuit.serverErrors.filter((t) => t > since), now];
    const trips =
      (circuit.state === "half-open" && probe) ||
      (circuit.state === "closed" &&
        (circuit.consecutive >= this.#maxConsecutive ||
          circuit.rateLimited.length >= this.#maxRateLimited ||
          circuit.serverErrors.length >= this.#maxServerErrors));
    if (trips) {
      circuit.state = "open";
      circuit.opened++;
      // A provider's retry-after is honoured up to an hour: a year's worth (999999999 s, or a date
      // far ahead) would shut the provider off until the process restarts; an hour on, one probe asks.
      circuit.openUntil =
        now + Math.max(this.#coolDownMs, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
    }
  }

  state(provider: string): BreakerSnapshot {
    const circuit = this.#circuits.get(provider);
    if (circuit === undefined)
      return {
        state: "closed",
        consecutiveFailures: 0,
        rateLimited: 0,
        serverErrors: 0,
        opened: 0,
      };
    // A report, not a decision: read with the clock as it is (a broken one shows an open circuit
    // as open and no failures in the window), so that remaining() and get_budget still answer.
    const now = this.#now();
    const since = now - this.#windowMs;
    // An open circuit whose cool-down has passed is reported as it will act: half-open.
    const state =
      circuit.state === "open" && now >= circuit.openUntil ? "half-open" : circuit.state;
    return {
      state,
      consecutiveFailures: circuit.consecutive,
      rateLimited: circuit.rateLimited.filter((t) => t > since).length,
      serverErrors: circuit.serverErrors.filter((t) => t > since).length,
      ...(state === "open" ? { openUntil: circuit.openUntil } : {}),
      opened: circuit.opened,
    };
  }

  /** Every provider seen so far. */
  snapshot(): Record<string, BreakerSnapshot> {
    return Object.fromEntries([...this.#circuits.keys()].sort().map((p) => [p, this.state(p)]));
  }

  /** The clock's time, checked: a NaN time would empty every window, and the breaker would never open. */
  #clock(): number {
    const now = this.#now();
    if (typeof now !== "number" || !Number.isFinite(now))
      throw new RangeError(`the circuit breaker's clock returned ${String(now)}, not a time`);
    return now;
  }

  #circuit(provider: string): Circuit {
    let circuit = this.#circuits.get(provider);
    if (circuit === undefined) {
      circuit = {
        state: "closed",
        consecutive: 0,
        rateLimited: [],
        serverErrors: [],
        openUntil: 0,
        probing: false,
        opened: 0,
      };
      this.#circuits.set(provider, circuit);
    }
    return circuit;
  }
}

const CLOSED_PERMIT: BreakerPermit = Object.freeze({ ok: true, probe: false });
const PROBE_PERMIT: BreakerPermit = Object.freeze({ ok: true, probe: true });

function checkProvider(provider: unknown): void {
  if (typeof provider !== "string")
    throw new TypeError(`"provider" expected a string, got ${shown(provider)}`);
}
