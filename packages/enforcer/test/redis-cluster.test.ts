/**
 * The Redis ledger on a Redis Cluster of three primaries on loopback, started here (spec/enforcement.md
 * §8): every key of a chain carries its root as hash tag, so one script call reaches all of them
 * in one slot. The ledger vectors pass on it, an enforcer spends on it, and the durability check
 * reads every primary. Needs redis-server and redis-cli; in CI they are there and this runs.
 */
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { runLedgerVectors } from "@allowance/enforcer/testing";
import { verify } from "@allowance/verifier";
import { freshPrefix } from "./redis-support.js";
import { hasRedisServer, startCluster } from "./redis-servers.js";

const USD = 1_000_000;
const available = hasRedisServer();

describe.skipIf(!available)("the Redis ledger on a 3-primary Redis Cluster", () => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let client: Cluster;
  beforeAll(async () => {
    cluster = await startCluster(3, ["--appendonly", "yes"]);
    client = new Cluster(
      cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
      { redisOptions: { maxRetriesPerRequest: 2 } },
    );
    await client.ping();
  }, 60_000);
  afterAll(async () => {
    await client?.quit();
    await cluster?.dispose();
  }, 30_000);

  /** Deletes every key under `prefix`, on each primary (a SCAN sees one node's keys). */
  async function deleteEverywhere(prefix: string): Promise<void> {
    for (const node of client.nodes("master")) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        for (const key of keys) await node.unlink(key);
      } while (cursor !== "0");
    }
  }

  it("spreads the slots over three primaries", async () => {
    expect(client.nodes("master")).toHaveLength(3);
  });

  it("passes every ledger vector, each root's keys in one slot", async () => {
    const prefixes: string[] = [];
    const report = await runLedgerVectors(() => {
      const prefix = freshPrefix();
      prefixes.push(prefix);
      return new RedisLedger(client, { keyPrefix: prefix });
    });
    expect(report.failures).toEqual([]);
    expect(report.vectors).toBeGreaterThan(0);
    for (const prefix of prefixes) await deleteEverywhere(prefix);
  });

  it("reserves, commits and denies for chains whose roots live on different primaries, each chain's keys in its root's slot", async () => {
    const prefix = freshPrefix();
    const ledger = new RedisLedger(client, { keyPrefix: prefix });
    const enforcer = new Enforcer({ ledger });
    const chains = [];
    for (let i = 0; i < 6; i++) {
      const root = await generateKeyPair();
      const holder = await generateKeyPair();
      const token = mint({
        rootKey: root,
        holder: publicKeyOf(holder),
        grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 10 * USD },
      });
      chains.push(verify(token, { roots: trustedRoots([root]) }));
    }
    try {
      for (const chain of chains) {
        const d = await enforcer.reserve({ chain, usdMicros: 9 * USD });
        if (d.decision === "DENY") throw new Error("the first $9 was denied");
        await enforcer.commit(d.reservationId, { usdMicros: 9 * USD });
        expect(await enforcer.reserve({ chain, usdMicros: 2 * USD })).toMatchObject({
          decision: "DENY",
          reason: "BUDGET_USD",
        });
      }
      // Each root's keys are all in one slot; the roots are spread over more than one primary.
      const slotsOfRoot = new Map<string, Set<number>>();
      const owners = new Set<string>();
      for (const node of client.nodes("master")) {
        const [, keys] = await node.scan("0", "MATCH", `${prefix}*`, "COUNT", 10_000);
        if (keys.length > 0) owners.add(`${node.options.port}`);
        for (const key of keys) {
          const root = /\{([^}]*)\}/.exec(key)?.[1] as string;
          const slot = (await node.call("CLUSTER", "KEYSLOT", key)) as number;
          slotsOfRoot.set(root, (slotsOfRoot.get(root) ?? new Set()).add(slot));
        }
      }
      expect(slotsOfRoot.size).toBe(6);
      for (const slots of slotsOfRoot.values()) expect(slots.size).toBe(1);
      expect(owners.size).toBeGreaterThan(1);
    } finally {
      await deleteEverywhere(prefix);
    }
  });

  it("reads the persistence of every primary: one without AOF makes the ledger refuse", async () => {
    const nodes = client.nodes("master");
    const last = nodes[nodes.length - 1];
    if (last === undefined) throw new Error("no primary");
    await last.config("SET", "appendonly", "no");
    try {
      const ledger = new RedisLedger(client, { keyPrefix: freshPrefix() });
      await expect(ledger.checkDurability()).rejects.toMatchObject({
        code: "ERR_LEDGER_NOT_DURABLE",
        message: expect.stringContaining(`${last.options.port}`),
      });
    } finally {
      await last.config("SET", "appendonly", "yes");
    }
    await expect(
      new RedisLedger(client, { keyPrefix: freshPrefix() }).checkDurability(),
    ).resolves.toBeUndefined();
  });
});
