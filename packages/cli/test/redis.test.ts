import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import {
  exportPrivateJwk,
  exportPublicJwk,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
} from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify } from "@allowance/verifier";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowance, expectSuccess, json, tempDir } from "./support.js";

// A throwaway redis-server when one is installed (the enforcer's test setup installs it on CI).
const given = process.env["ALLOWANCE_REDIS_URL"];
const installed =
  given !== undefined && given !== ""
    ? true
    : spawnSync("redis-server", ["--version"]).status === 0;
const tmp = tempDir();
let server: ChildProcess | undefined;
let url = given ?? "";

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        resolve(typeof address === "object" && address !== null ? address.port : 0),
      );
    });
  });
}

beforeAll(async () => {
  if (!installed || url !== "") return;
  const port = await freePort();
  server = spawn(
    "redis-server",
    // AOF on, as the Redis ledger requires by default (a restart would otherwise lose spend).
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"],
    { cwd: tmp.dir, stdio: "ignore" },
  );
  url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
  probe.on("error", () => {});
  for (let i = 0; i < 50; i++) {
    try {
      await probe.connect();
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  probe.disconnect();
});

afterAll(() => {
  server?.kill();
  tmp.remove();
});

describe.skipIf(!installed)("allowance ledger remaining --ledger redis://", () => {
  it("shows what another process spent through a Redis ledger", async () => {
    const root = await generateKeyPair();
    const agent = await generateKeyPair();
    const token = formatToken(
      mint({
        rootKey: root,
        holder: publicKeyOf(agent),
        grant: { exp: Math.floor(Date.now() / 1000) + 600, usdMicros: 5_000_000 },
      }),
    );
    writeFileSync(tmp.path("root.pub.jwk"), JSON.stringify(exportPublicJwk(root)));
    writeFileSync(tmp.path("agent.jwk"), JSON.stringify(exportPrivateJwk(agent)));
    const chain = verify(token, { roots: trustedRoots([root]) });
    const redis = new Redis(url);
    const enforcer = new Enforcer({ ledger: new RedisLedger(redis, { closeConnection: true }) });
    const decision = await enforcer.reserve({ chain, usdMicros: 1_000_000 });
    if (decision.decision === "DENY") throw new Error("expected the reservation to be allowed");
    await enforcer.commit(decision.reservationId, { usdMicros: 750_000 });
    const expected = await enforcer.remaining(chain);
    await enforcer.ledger.close();

    const run = allowance([
      "ledger",
      "remaining",
      "--token",
      token,
      "--roots",
      tmp.path("root.pub.jwk"),
      "--ledger",
      url,
      "--json",
    ]);
    expectSuccess(run);
    const out = json<{ ledger: { kind: string }; links: unknown; leaf: unknown }>(run);
    expect(out.ledger.kind).toBe("redis");
    // The enforcer's own report, as remainingToJSON prints it: uncapped lines on which nothing moved
    // are left out.
    expect(out.links).toEqual(
      expected.links.map((link) => ({
        ...link,
        limits: link.limits.filter((l) => l.cap !== null || l.spent > 0 || l.held > 0),
      })),
    );
    expect(out.leaf).toMatchObject({ usdMicros: 4_250_000 });
    expect(readFileSync(tmp.path("root.pub.jwk"), "utf8")).toContain(root.kid);
  });
});
