import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attenuate, generateKeyPair, mint, publicKeyOf, trustedRoots, type KeyPair } from "@allowance/core";
import { RedisReplayCache, RedisRevocationStore } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

let redis: Redis;
const prefix = freshPrefix();
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  if (redis === undefined) return;
  await deleteKeys(redis, prefix);
  await redis.quit();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds or `ms` pass. */
async function eventually(condition: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await sleep(10);
  return condition();
}

describe.skipIf(redisUrl === "")("the redis replay cache", () => {
  const now = Math.floor(Date.now() / 1000);

  it("accepts the first claim of an id and refuses the second", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}replay:` });
    expect(await cache.claim("id-1", now + 60, now)).toBe(true);
    expect(await cache.claim("id-1", now + 60, now)).toBe(false);
    expect(await cache.claim("id-2", now + 60, now)).toBe(true);
  });

  it("shares the record between clients: a second connection refuses an id claimed by the first", async () => {
    const other = new Redis(redisUrl);
    try {
      const options = { keyPrefix: `${prefix}replay:` };
      expect(await new RedisReplayCache(redis, options).claim("shared", now + 60, now)).toBe(true);
      expect(await new RedisReplayCache(other, options).claim("shared", now + 60, now)).toBe(false);
    } finally {
      await other.quit();
    }
  });

  it("records an id until its expiry, and accepts it again after", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}replay:` });
    expect(await cache.claim("short", now + 1, now)).toBe(true);
    expect(await redis.pttl(`${prefix}replay:short`)).toBeGreaterThan(0);
    expect(await cache.claim("short", now + 1, now)).toBe(false);
    await sleep(1100);
    expect(await cache.claim("short", now + 1, now)).toBe(true);
  });

  it("records nothing for an id that has already expired, but still refuses one recorded earlier", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}replay:` });
    expect(await cache.claim("late", now, now)).toBe(true);
    expect(await redis.exists(`${prefix}replay:late`)).toBe(0);
    expect(await cache.claim("kept", now + 60, now)).toBe(true);
    expect(await cache.claim("kept", now - 1, now)).toBe(false);
  });
});

describe.skipIf(redisUrl === "")("the redis revocation store", () => {
  async function chain() {
    const [root, owner, agent] = (await Promise.all([generateKeyPair(), generateKeyPair(), generateKeyPair()])) as [KeyPair, KeyPair, KeyPair];
    const now = Math.floor(Date.now() / 1000);
    const parent = mint({ rootKey: root, holder: publicKeyOf(owner), grant: { exp: now + 3600, usdMicros: 100 } });
    const token = attenuate(parent, { holderKey: owner, holder: publicKeyOf(agent), grant: { usdMicros: 50 } });
    return { token, roots: trustedRoots([root]), now };
  }

  it("makes a link revoked in one process fail verification in another, through pub/sub", async () => {
    const key = `${prefix}revoked-a`;
    const elsewhere = new Redis(redisUrl);
    const [gateway, admin] = await Promise.all([RedisRevocationStore.open(redis, { key }), RedisRevocationStore.open(elsewhere, { key })]);
    try {
      const { token, roots, now } = await chain();
      const verified = verify(token, { roots, now, revocations: gateway });
      await admin.revoke(verified.linkIds[0] as string);
      expect(await eventually(() => gateway.has(verified.linkIds[0] as string))).toBe(true);
      // Revoking the root link revokes its descendants: the whole chain fails, naming link 0.
      expect(() => verify(token, { roots, now, revocations: gateway })).toThrow(expect.objectContaining({ code: "ERR_REVOKED", linkIndex: 0 }));
      expect(await redis.smembers(key)).toEqual([verified.linkIds[0]]);
    } finally {
      await gateway.close();
      await admin.close();
      await elsewhere.quit();
    }
  });

  it("loads what was revoked before it opened", async () => {
    const key = `${prefix}revoked-b`;
    const { token, roots, now } = await chain();
    const linkId = verify(token, { roots, now }).linkIds[1] as string;
    const first = await RedisRevocationStore.open(redis, { key });
    await first.revoke(linkId);
    await first.close();
    const second = await RedisRevocationStore.open(redis, { key });
    try {
      expect(second.has(linkId)).toBe(true);
      expect(second.list()).toEqual([linkId]);
      expect(() => verify(token, { roots, now, revocations: second })).toThrow(expect.objectContaining({ code: "ERR_REVOKED", linkIndex: 1 }));
    } finally {
      await second.close();
    }
  });

  it("catches up by its periodic reload when an id reaches the set without a message", async () => {
    const key = `${prefix}revoked-c`;
    const store = await RedisRevocationStore.open(redis, { key, reloadIntervalMs: 50 });
    try {
      const { token, roots, now } = await chain();
      const linkId = verify(token, { roots, now }).linkIds[1] as string;
      // As if the PUBLISH had been lost: only the SADD.
      await redis.sadd(key, linkId);
      expect(await eventually(() => store.has(linkId))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("refuses to revoke something that is not a link id", async () => {
    const store = await RedisRevocationStore.open(redis, { key: `${prefix}revoked-d` });
    try {
      await expect(store.revoke("not-a-link-id")).rejects.toThrow(TypeError);
    } finally {
      await store.close();
    }
  });
});
