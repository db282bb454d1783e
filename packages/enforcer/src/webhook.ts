/**
 * A webhook sink for enforcer events (spec/enforcement.md §7). Each event is POSTed as JSON, in
 * order, with an HMAC-SHA256 signature header; failures are retried with exponential backoff.
 *
 *   Allowance-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   Allowance-Event-Id:  the event's eventId (a reservation's events: the same wherever and
 *                        however often the event is raised, spec/enforcement.md §7.2), else a
 *                        uuid; the same on every retry, so receivers can drop duplicates
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { Enforcer, EnforcerEvents } from "./enforcer.js";

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
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `t=${timestamp},v1=${mac}`;
}

/** For receivers: checks the header against the raw body, within `toleranceSeconds` of `now`. */
export function verifyWebhookSignature(
  secret: string,
  body: string,
  header: string | null | undefined,
  options: { now?: number; toleranceSeconds?: number } = {},
): boolean {
  if (typeof header !== "string") return false;
  const match = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header);
  if (match === null) return false;
  const timestamp = Number(match[1]);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, body, timestamp).slice(-64), "hex");
  return timingSafeEqual(expected, Buffer.from(match[2] as string, "hex"));
}

/** A reservation's event's own id (spec/enforcement.md §7.2), if it has one. */
function eventIdOf(data: unknown): string | undefined {
  const id = (data as { eventId?: unknown } | null)?.eventId;
  return typeof id === "string" ? id : undefined;
}

export function attachWebhook(enforcer: Enforcer, options: WebhookOptions): WebhookSink {
  if (typeof options.url !== "string" || !/^https?:\/\//.test(options.url))
    throw new TypeError('"url" expected an http(s) URL');
  if (typeof options.secret !== "string" || options.secret.length < 16)
    throw new TypeError('"secret" expected at least 16 characters');
  const send = options.fetch ?? fetch;
  const retries = options.retries ?? 3;
  const backoff = options.backoffMs ?? 200;
  const timeout = options.timeoutMs ?? 5000;
  const events = options.events ?? ["denied", "refused", "expired", "overrun", "threshold"];
  let queue: Promise<void> = Promise.resolve();
  let delivered = 0;
  let failed = 0;

  const deliver = async (envelope: WebhookEnvelope) => {
    const body = JSON.stringify(envelope);
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0)
        await new Promise((resolve) => setTimeout(resolve, backoff * 2 ** (attempt - 1)));
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
        id: eventIdOf(data) ?? randomUUID(),
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
