import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attenuate, generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { AllowanceError, FileRevocationStore, MemoryRevocationStore, verify } from "@allowance/verifier";

const NOW = 1_800_000_000;

async function threeLinks() {
  const keys = await Promise.all([0, 1, 2, 3].map(() => generateKeyPair()));
  const [root, a, b, c] = keys as [(typeof keys)[0], (typeof keys)[0], (typeof keys)[0], (typeof keys)[0]];
  let token = mint({ rootKey: root, holder: publicKeyOf(a), grant: { exp: NOW + 3600 } });
  token = attenuate(token, { holderKey: a, holder: publicKeyOf(b), grant: {} });
  token = attenuate(token, { holderKey: b, holder: publicKeyOf(c), grant: {} });
  const roots = trustedRoots([root]);
  return { token, roots, ids: verify(token, { roots, now: NOW }).linkIds };
}

function codeAndIndex(run: () => unknown): [string, number | undefined] {
  try {
    run();
  } catch (error) {
    if (error instanceof AllowanceError) return [error.code, error.linkIndex];
    throw error;
  }
  return ["accepted", undefined];
}

describe("revocation", () => {
  it("of any link rejects the chain at that link, so revoking a link revokes its descendants", async () => {
    const { token, roots, ids } = await threeLinks();
    ids.forEach((id, index) => {
      const revocations = new MemoryRevocationStore([id]);
      expect(codeAndIndex(() => verify(token, { roots, now: NOW, revocations }))).toEqual(["ERR_REVOKED", index]);
    });
  });

  it("of an unrelated id changes nothing", async () => {
    const { token, roots } = await threeLinks();
    const other = await threeLinks();
    const revocations = new MemoryRevocationStore(other.ids);
    expect(codeAndIndex(() => verify(token, { roots, now: NOW, revocations }))).toEqual(["accepted", undefined]);
  });

  it("refuses ids that are not link ids", () => {
    expect(() => new MemoryRevocationStore().revoke("not-an-id")).toThrow(TypeError);
  });
});

describe("the file revocation store", () => {
  const dir = mkdtempSync(join(tmpdir(), "allowance-revocations-"));

  it("sees an id written by another store instance on the same file", async () => {
    const { token, roots, ids } = await threeLinks();
    const path = join(dir, "shared.json");
    const reader = new FileRevocationStore(path, { checkIntervalMs: 0 });
    const writer = new FileRevocationStore(path);
    expect(codeAndIndex(() => verify(token, { roots, now: NOW, revocations: reader }))[0]).toBe("accepted");
    writer.revoke(ids[1] as string);
    expect(codeAndIndex(() => verify(token, { roots, now: NOW, revocations: reader }))).toEqual(["ERR_REVOKED", 1]);
  });

  it("writes a JSON file that lists every id, loses none when two stores write in turn", async () => {
    const path = join(dir, "two-writers.json");
    const { ids } = await threeLinks();
    const first = new FileRevocationStore(path);
    const second = new FileRevocationStore(path);
    first.revoke(ids[0] as string);
    second.revoke(ids[1] as string);
    first.revoke(ids[2] as string);
    const file = JSON.parse(readFileSync(path, "utf8")) as { version: number; revoked: string[] };
    expect(file.version).toBe(1);
    expect(new Set(file.revoked)).toEqual(new Set(ids));
  });

  it("keeps the last good list when the file turns invalid, and says why", async () => {
    const path = join(dir, "broken.json");
    const { ids } = await threeLinks();
    const store = new FileRevocationStore(path, { checkIntervalMs: 0 });
    store.revoke(ids[0] as string);
    writeFileSync(path, "{ not json");
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    expect(store.has(ids[0] as string)).toBe(true);
    expect(store.lastError).toBeInstanceOf(Error);
  });

  it("treats a missing file as an empty list", () => {
    const store = new FileRevocationStore(join(dir, "missing.json"));
    expect(store.list()).toEqual([]);
  });
});
