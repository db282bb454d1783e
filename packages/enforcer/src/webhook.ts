/**
 * A webhook sink for enforcer events (spec/enforcement.md §7). Each event is POSTed as JSON, in
 * order, with an HMAC-SHA256 signature header; failures are retried with exponential backoff.
 *
 *   Allowance-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   Allowance-Event-Id:  the event's eventId (a reservation's events: the same wherever and
 *                        however often the event is raised, spec/enforcement.md §7.2), a
 *                        receipt's root and seq, a settlement's line and spent, else a uuid; the
 *                        same on every retry, so receivers can drop duplicates
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { Enforcer, EnforcerEvents } from "./enforcer.js";
import { checkKnownKeys, integerOption } from "./ledger.js";

export type EventName = keyof EnforcerEvents;
export const EVENT_NAMES: readonly EventName[] = [
  "denied",
  "refused",
  "reserved",
  "committed",
  "released",
  "expired",
  "overrun",
  "threshold",
  "settled",
  "receipt",
];

export interface WebhookOptions {
  readonly url: string;
  /** The shared secret for the HMAC. */
  readonly secret: string;
  /** Which events to send. Default: denied, refused, expired, overrun, threshold. */
  readonly events?: readonly EventName[];
  /** Attempts after the first. Default 3. */
  readonly retries?: number;
  /** First backoff; doubled on each retry. Default 200 ms. */
  readonly backoffMs?: number;
  /** Per attempt. Default 5,000 ms. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export interface WebhookSink {
  /** Resolves once every queued event was delivered or given up on. */
  flush(): Promise<void>;
  /** Stops listening; queued events are still sent. */
  detach(): void;
  readonly delivered: number;
  /** Events given up on after every retry failed. */
  readonly failed: number;
}

export interface WebhookEnvelope {
  readonly id: string;
  readonly type: EventName;
  /** Epoch milliseconds when the event happened. */
  readonly at: number;
  readonly data: unknown;
}

export function signWebhook(secret: string, body: string, timestamp: number): string {
  checkSecret(secret);
  if (typeof body !== "string" || !body.isWellFormed())
    throw new TypeError('"body" expected well-formed text');
  integerOption(timestamp, "timestamp", undefined, 0, MAX_TIMESTAMP);
  return `t=${timestamp},v1=${macOf(secret, timestamp, body).toString("hex")}`;
}

/** The largest timestamp a signature header carries: the 12 digits its pattern reads. */
const MAX_TIMESTAMP = 999_999_999_999;

/** The signature of a delivery: HMAC-SHA256 of `<timestamp>.<body>` (spec/enforcement.md §7.1). */
function macOf(secret: string, timestamp: number, body: string | Uint8Array): Buffer {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest();
}

/**
 * For receivers: checks the header against the raw body (the text or the bytes as received),
 * within `toleranceSeconds` (default 300) of `now` (epoch seconds, default the clock). A header that
 * is missing, malformed, stale or signed otherwise is `false`. Arguments that would weaken the check
 * are errors, never a pass: a secret shorter than 16 characters, a body that is not text or bytes,
 * a `now` or tolerance that is not a number (NaN would make every timestamp fresh), an unknown
 * option.
 */
/** The longest delay a Node timer keeps (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

export function verifyWebhookSignature(
  secret: string,
  body: string | Uint8Array,
  header: string | null | undefined,
  options: { now?: number; toleranceSeconds?: number } = {},
): boolean {
  checkSecret(secret);
  if (typeof body !== "string" && !(body instanceof Uint8Array))
    throw new TypeError('"body" expected the raw body, a string or bytes');
  // Text that UTF-8 cannot carry as it is ("\ud800" encodes as "\ufffd") is not what was signed.
  if (typeof body === "string" && !body.isWellFormed())
    throw new TypeError('"body" expected well-formed text (or the raw bytes)');
  if (options === null || typeof options !== "object")
    throw new TypeError('"options" expected an object');
  checkKnownKeys(options, ["now", "toleranceSeconds"], "");
  const now = options.now === undefined ? Math.floor(Date.now() / 1000) : options.now;
  if (typeof now !== "number" || !Number.isFinite(now))
    throw new RangeError(`"now" expected epoch seconds, got ${String(now)}`);
  const tolerance = integerOption(options.toleranceSeconds, "toleranceSeconds", 300, 0);
  if (typeof header !== "string") return false;
  const match = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header);
  if (match === null) return false;
  const timestamp = Number(match[1]);
  if (Math.abs(now - timestamp) > tolerance) return false;
  return timingSafeEqual(macOf(secret, timestamp, body), Buffer.from(match[2] as string, "hex"));
}

function checkSecret(secret: unknown): void {
  if (typeof secret !== "string" || secret.length < 16)
    throw new TypeError('"secret" expected at least 16 characters');
}

/**
 * An event's id when it has one that is the same however often the event is raised: the event's
 * own `eventId` (a reservation's events and a settlement's, spec/enforcement.md §7.2); a receipt's
 * root and sequence number (a repeated commit raises the same receipt again); for a settlement
 * raised without an id, its line and spent (which a rate window's new bucket can repeat).
 */
function eventIdOf(type: EventName, data: unknown): string | undefined {
  const d = data as Record<string, unknown> | null;
  if (typeof d?.eventId === "string") return d.eventId;
  if (type === "receipt" && typeof d?.root === "string" && typeof d.seq === "number")
    return `receipt:${d.root}:${d.seq}`;
  if (
    type === "settled" &&
    typeof d?.linkId === "string" &&
    typeof d.field === "string" &&
    typeof d.spent === "number"
  )
    return `settled:${d.linkId}:${d.field}:${d.spent}`;
  return undefined;
}

/** Every key of WebhookOptions: any other is refused. */
const WEBHOOK_OPTIONS = Object.keys({
  url: 0,
  secret: 0,
  events: 0,
  retries: 0,
  backoffMs: 0,
  timeoutMs: 0,
  fetch: 0,
} satisfies Record<keyof WebhookOptions, 0>);

export function attachWebhook(enforcer: Enforcer, options: WebhookOptions): WebhookSink {
  if (typeof (enforcer as Partial<Enforcer> | null)?.on !== "function")
    throw new TypeError('"enforcer" expected an Enforcer');
  if (options === null || typeof options !== "object")
    throw new TypeError('"options" expected an object');
  // A misspelt key (`event` for `events`) would leave its default in force without a word.
  checkKnownKeys(options, WEBHOOK_OPTIONS, "");
  if (
    typeof options.url !== "string" ||
    !/^https?:\/\//.test(options.url) ||
    !URL.canParse(options.url)
  )
    throw new TypeError('"url" expected an http(s) URL');
  checkSecret(options.secret);
  if (options.fetch !== undefined && typeof options.fetch !== "function")
    throw new TypeError('"fetch" expected a function');
  const send = options.fetch ?? fetch;
  // NaN or a negative count would give up on every event without one attempt.
  const retries = integerOption(options.retries, "retries", 3, 0, 100);
  const backoff = integerOption(options.backoffMs, "backoffMs", 200, 0, 3_600_000);
  const timeout = integerOption(options.timeoutMs, "timeoutMs", 5000, 1, 3_600_000);
  // Only an absent list is the default: null is a mistake, not "no preference".
  const events: readonly EventName[] =
    options.events === undefined
      ? ["denied", "refused", "expired", "overrun", "threshold"]
      : options.events;
  // A misspelt name ("denid") would listen for an event that never comes: no alert, no error.
  if (!Array.isArray(events) || events.some((name) => !EVENT_NAMES.includes(name)))
    throw new TypeError(`"events" expected an array of ${EVENT_NAMES.join(", ")}`);
  let queue: Promise<void> = Promise.resolve();
  let delivered = 0;
  let failed = 0;

  const deliver = async (envelope: WebhookEnvelope) => {
    const body = JSON.stringify(envelope);
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0)
        // At most a timer's longest delay: past 2^31 − 1 ms Node fires it at once.
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(backoff * 2 ** (attempt - 1), MAX_TIMER_MS)),
        );
      try {
        const response = await send(options.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "allowance-event-id": envelope.id,
            "allowance-signature": signWebhook(options.secret, body, Math.floor(Date.now() / 1000)),
          },
          body,
          signal: AbortSignal.timeout(timeout),
        });
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) {
          delivered++;
          return;
        }
        // A client error other than 408/429 will not change on retry.
        if (response.status < 500 && response.status !== 408 && response.status !== 429) break;
      } catch {
        // Network error or timeout: retry.
      }
    }
    failed++;
  };

  const listeners = events.map((type) => {
    const listener = (data: unknown) => {
      const envelope: WebhookEnvelope = {
        id: eventIdOf(type, data) ?? randomUUID(),
        type,
        at: Date.now(),
        data,
      };
      queue = queue.then(() => deliver(envelope));
    };
    enforcer.on(type, listener as never);
    return [type, listener] as const;
  });

  return {
    flush: () => queue,
    detach: () => {
      for (const [type, listener] of listeners) enforcer.off(type, listener as never);
    },
    get delivered() {
      return delivered;
    },
    get failed() {
      return failed;
    },
  };
}
