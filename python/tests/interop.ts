/**
 * The TypeScript side of python/tests/test_interop.py: reads one JSON request per line on stdin and
 * answers one JSON line each, through the packages' own source. Run from the repository root:
 *   node --conditions=@allowance/source --import tsx python/tests/interop.ts
 * Every time is the system clock's (no `now` option), so the script works whatever the clock
 * option of the day is called; the tests use expiry dates far in the future.
 */
import { createInterface } from "node:readline";
import {
  AllowanceError,
  attenuate,
  checkArgumentsJson,
  effectiveToJSON,
  formatToken,
  keyPairFromSeed,
  mint,
  publicKeyFromBytes,
  trustedRoots,
  type GrantFields,
} from "@allowance/core";
import { MemoryReplayCache, present, verify, verifyPresentation } from "@allowance/verifier";

type Request = { id: number; op: string } & Record<string, unknown>;

const bytes = (text: unknown): Uint8Array => new Uint8Array(Buffer.from(String(text), "base64url"));
const text = (data: Uint8Array): string => Buffer.from(data).toString("base64url");

/** A request body: `body` as text (sent as UTF-8) or `bodyBytes` as base64url bytes; else none. */
function bodyOf(request: Request): { body: string | Uint8Array } | Record<string, never> {
  if (typeof request.body === "string") return { body: request.body };
  if (typeof request.bodyBytes === "string") return { body: bytes(request.bodyBytes) };
  return {};
}

async function rootsOf(keys: unknown): Promise<ReturnType<typeof trustedRoots>> {
  return trustedRoots(
    await Promise.all((keys as string[]).map((k) => publicKeyFromBytes(bytes(k)))),
  );
}

async function answer(request: Request): Promise<unknown> {
  switch (request.op) {
    case "mint": {
      const token = mint({
        rootKey: await keyPairFromSeed(bytes(request.rootSeed)),
        holder: bytes(request.holder),
        grant: request.grant as GrantFields,
        nonce: bytes(request.nonce),
      });
      return { token: formatToken(token) };
    }
    case "attenuate": {
      const token = attenuate(String(request.token), {
        holderKey: await keyPairFromSeed(bytes(request.holderSeed)),
        holder: bytes(request.holder),
        grant: request.grant as GrantFields,
        nonce: bytes(request.nonce),
      });
      return { token: formatToken(token) };
    }
    case "verify": {
      const chain = verify(String(request.token), {
        roots: await rootsOf(request.roots),
        ...(typeof request.audience === "string" ? { audience: request.audience } : {}),
      });
      return {
        grant: JSON.parse(JSON.stringify(effectiveToJSON(chain.grant))) as unknown,
        linkIds: [...chain.linkIds],
      };
    }
    case "present": {
      const presentation = present(
        String(request.token),
        await keyPairFromSeed(bytes(request.holderSeed)),
        {
          aud: String(request.aud),
          ...(typeof request.method === "string" ? { method: request.method } : {}),
          ...(typeof request.path === "string" ? { path: request.path } : {}),
          ...bodyOf(request),
          jti: bytes(request.jti),
        },
      );
      return { presentation };
    }
    case "verifyPresentation": {
      const verified = await verifyPresentation(String(request.presentation), {
        roots: await rootsOf(request.roots),
        audience: String(request.audience),
        replay: new MemoryReplayCache(),
        ...(typeof request.method === "string" ? { method: request.method } : {}),
        ...(typeof request.path === "string" ? { path: request.path } : {}),
        ...bodyOf(request),
        ...(request.requireBodyBinding === true ? { requireBodyBinding: true } : {}),
      });
      return { holder: text(verified.chain.holder), claims: { ...verified.claims } };
    }
    case "verifyMany": {
      // Many tokens, each against its own roots, at a fixed time, in one round trip.
      const nowMs = Number(request.nowMs);
      const results = [];
      for (const { token, roots } of request.cases as { token: string; roots: string[] }[]) {
        const trusted = await rootsOf(roots);
        results.push(
          outcome(() => {
            const chain = verify(token, { roots: trusted, now: () => nowMs });
            return {
              grant: JSON.parse(JSON.stringify(effectiveToJSON(chain.grant))) as unknown,
              linkIds: [...chain.linkIds],
            };
          }),
        );
      }
      return results;
    }
    case "verifyPresentationMany": {
      const roots = await rootsOf(request.roots);
      const nowMs = Number(request.nowMs);
      const results = [];
      for (const presentation of request.presentations as string[]) {
        results.push(
          await outcomeAsync(async () => {
            const verified = await verifyPresentation(presentation, {
              roots,
              audience: String(request.audience),
              replay: new MemoryReplayCache(),
              now: () => nowMs,
              method: String(request.method),
              path: String(request.path),
              ...bodyOf(request),
            });
            return { holder: text(verified.chain.holder), claims: { ...verified.claims } };
          }),
        );
      }
      return results;
    }
    case "checkArguments": {
      const denial = checkArgumentsJson(
        request.args as GrantFields["args"],
        String(request.tool),
        String(request.arguments),
      );
      return {
        denial:
          denial === null
            ? null
            : { reason: denial.reason, argument: denial.argument, pattern: denial.pattern },
      };
    }
    default:
      throw new TypeError(`unknown op ${request.op}`);
  }
}

/** A call's outcome as the ops above report it: its result, or an AllowanceError's code and link. */
function outcome(run: () => unknown): Record<string, unknown> {
  try {
    return { ok: true, result: run() };
  } catch (error) {
    return refusal(error);
  }
}

async function outcomeAsync(run: () => Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    return { ok: true, result: await run() };
  } catch (error) {
    return refusal(error);
  }
}

function refusal(error: unknown): Record<string, unknown> {
  // Anything but an AllowanceError is a bug on this side: reported, never read as a refusal.
  if (!(error instanceof AllowanceError)) return { ok: false, error: String(error) };
  return { ok: false, code: error.code, linkIndex: error.linkIndex ?? null };
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line) as Request;
  let reply: Record<string, unknown>;
  try {
    reply = { id: request.id, ok: true, result: await answer(request) };
  } catch (error) {
    reply =
      error instanceof AllowanceError
        ? { id: request.id, ok: false, code: error.code, linkIndex: error.linkIndex ?? null }
        : { id: request.id, ok: false, error: String(error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
