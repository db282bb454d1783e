import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs, {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { attenuate, generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { AllowanceError, MemoryRevocationStore, verify } from "@allowance/verifier";
import { FileRevocationStore } from "@allowance/verifier/file";

const NOW = 1_800_000_000;

async function threeLinks() {
  const keys = await Promise.all([0, 1, 2, 3].map(() => generateKeyPair()));
  const [root, a, b, c] = keys as [
    (typeof keys)[0],
    (typeof keys)[0],
    (typeof keys)[0],
    (typeof keys)[0],
  ];
  let token = mint({ rootKey: root, holder: publicKeyOf(a), grant: { exp: NOW + 3600 } });
  token = attenuate(token, { holderKey: a, holder: publicKeyOf(b), grant: {} });
  token = attenuate(token, { holderKey: b, holder: publicKeyOf(c), grant: {} });
  const roots = trustedRoots([root]);
  return { token, roots, ids: verify(token, { roots, now: () => NOW * 1000 }).linkIds };
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
      expect(
        codeAndIndex(() => verify(token, { roots, now: () => NOW * 1000, revocations })),
      ).toEqual(["ERR_REVOKED", index]);
    });
  });

  it("of an unrelated id changes nothing", async () => {
    const { token, roots } = await threeLinks();
    const other = await threeLinks();
    const revocations = new MemoryRevocationStore(other.ids);
    expect(
      codeAndIndex(() => verify(token, { roots, now: () => NOW * 1000, revocations })),
    ).toEqual(["accepted", undefined]);
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
    expect(
      codeAndIndex(() => verify(token, { roots, now: () => NOW * 1000, revocations: reader }))[0],
    ).toBe("accepted");
    writer.revoke(ids[1] as string);
    expect(
      codeAndIndex(() => verify(token, { roots, now: () => NOW * 1000, revocations: reader })),
    ).toEqual(["ERR_REVOKED", 1]);
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
    expect(store.lastError).toBeInstanceOf(AllowanceError);
    expect(store.lastError?.code).toBe("ERR_REVOCATION_UNAVAILABLE");
  });

  it("regression: reads the file again within its interval when the wall clock is set back", async () => {
    const path = join(dir, "clock-set-back.json");
    const { ids } = await threeLinks();
    const store = new FileRevocationStore(path, { checkIntervalMs: 20 });
    expect(store.has(ids[0] as string)).toBe(false);
    // The wall clock steps back an hour (an NTP correction): `Date.now() - checkedAt` went
    // negative, and no revocation took effect until the clock had caught up again.
    const now = Date.now();
    const wall = vi.spyOn(Date, "now").mockReturnValue(now - 3_600_000);
    try {
      writeFileSync(path, JSON.stringify({ version: 1, revoked: [ids[0]] }));
      await new Promise((resolve) => setTimeout(resolve, 40));
      expect(store.has(ids[0] as string)).toBe(true);
    } finally {
      wall.mockRestore();
    }
  });

  it("a memory store given null or a string for its ids refuses it, naming linkIds", () => {
    for (const bad of [null, 5, {}, "abc"])
      expect(() => new MemoryRevocationStore(bad as never)).toThrow(/"linkIds"/);
  });

  it("refuses a path with a NUL byte when it is made, not at the first lookup", () => {
    expect(() => new FileRevocationStore(join(dir, "a\0b.json"))).toThrow(/"path"/);
  });

  it("treats a missing file as an empty list", () => {
    const store = new FileRevocationStore(join(dir, "missing.json"));
    expect(store.list()).toEqual([]);
  });

  it("loses no revocation when 6 processes, round after round, all find a lock left by a crashed writer", async () => {
    const path = join(dir, "racing.json");
    const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
    const worker = fileURLToPath(new URL("./workers/revoker.ts", import.meta.url));
    const children = Array.from({ length: 6 }, () =>
      fork(worker, [path], {
        cwd: repoRoot,
        execArgv: ["--conditions=@allowance/source", "--import", "tsx"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      }),
    );
    const next = (child: (typeof children)[number]) =>
      new Promise<void>((resolve) => child.once("message", () => resolve()));
    const all: string[] = [];
    try {
      await Promise.all(children.map(next));
      for (let round = 0; round < 40; round++) {
        // Stale: older than any write could take, so every process starts the round by breaking
        // it, at once. Breaking it twice would let two of them write at the same time.
        const old = new Date(Date.now() - 60_000);
        writeFileSync(`${path}.lock`, "crashed");
        utimesSync(`${path}.lock`, old, old);
        const done = Promise.all(children.map(next));
        for (const child of children) {
          const id = randomBytes(32).toString("base64url");
          all.push(id);
          child.send([id]);
        }
        await done;
      }
    } finally {
      for (const child of children) child.send("exit");
    }
    const file = JSON.parse(readFileSync(path, "utf8")) as { revoked: string[] };
    expect(file.revoked).toHaveLength(all.length);
    expect(new Set(file.revoked)).toEqual(new Set(all));
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(existsSync(`${path}.lock.break`)).toBe(false);
  }, 60_000);

  it("never breaks a lock another writer took after this one saw the old lock stale", async () => {
    const path = join(dir, "taken-meanwhile.json");
    const lock = `${path}.lock`;
    const old = new Date(Date.now() - 60_000);
    writeFileSync(lock, "crashed");
    utimesSync(lock, old, old);
    // The interleaving: this writer looks at the stale lock; before it acts, writer A breaks it
    // and takes a fresh one (done here, inside the look); A releases it two looks later.
    const realStat = fs.statSync;
    let looks = 0;
    let releasedByA = false;
    const looking = ((target: fs.PathLike, options?: fs.StatSyncOptions) => {
      if (target === lock && ++looks === 1) {
        const stale = realStat(target, options);
        fs.unlinkSync(lock);
        writeFileSync(lock, "A");
        return stale;
      }
      if (
        target === lock &&
        looks === 3 &&
        existsSync(lock) &&
        readFileSync(lock, "utf8") === "A"
      ) {
        fs.unlinkSync(lock);
        releasedByA = true;
      }
      return realStat(target, options);
    }) as typeof fs.statSync;
    Object.assign(fs, { statSync: looking });
    syncBuiltinESMExports();
    const { ids } = await threeLinks();
    try {
      new FileRevocationStore(path).revoke(ids[0] as string);
    } finally {
      Object.assign(fs, { statSync: realStat });
      syncBuiltinESMExports();
    }
    // A's lock stood until A released it: this writer waited for it instead of removing it.
    expect(releasedByA).toBe(true);
    expect(new FileRevocationStore(path).list()).toEqual([ids[0]]);
  });

  it("clears a breaker lock left by a crash, and then the stale lock it was breaking", async () => {
    const path = join(dir, "left-breaker.json");
    const old = new Date(Date.now() - 60_000);
    for (const leftover of [`${path}.lock`, `${path}.lock.break`]) {
      writeFileSync(leftover, "crashed");
      utimesSync(leftover, old, old);
    }
    const { ids } = await threeLinks();
    new FileRevocationStore(path).revoke(ids[0] as string);
    expect(new FileRevocationStore(path).list()).toEqual([ids[0]]);
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(existsSync(`${path}.lock.break`)).toBe(false);
  });
});

/** The AllowanceError `run` throws; anything else thrown (a plain Error) fails the test. */
function refusal(run: () => unknown): AllowanceError {
  try {
    run();
  } catch (error) {
    if (error instanceof AllowanceError) return error;
    throw error;
  }
  return expect.fail("expected an AllowanceError");
}

// Contents a revocation file must not be read as: each is refused whole (spec/presentation.md §6.3).
const HOSTILE: readonly (readonly [string, string | Buffer])[] = [
  ["an array", "[]"],
  ["an empty object", "{}"],
  ["null", "null"],
  ["nothing", ""],
  ["version 2", '{"version":2,"revoked":[]}'],
  ["version as a string", '{"version":"1","revoked":[]}'],
  ["no version", '{"revoked":[]}'],
  ["revoked as a string", '{"version":1,"revoked":"x"}'],
  ["a number in revoked", '{"version":1,"revoked":[1]}'],
  ["a 42-character id", `{"version":1,"revoked":["${"A".repeat(42)}"]}`],
  ["an extra member", '{"version":1,"revoked":[],"extra":true}'],
  ["a __proto__ member", '{"__proto__":{"version":1},"version":1,"revoked":[]}'],
  ["bytes that are not JSON", Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
];

describe("the file revocation store's failures: ERR_REVOCATION_UNAVAILABLE", () => {
  const dir = mkdtempSync(join(tmpdir(), "allowance-revocations-failing-"));
  let files = 0;
  const fresh = () => join(dir, `list-${++files}.json`);

  it.each(HOSTILE)(
    "a file holding %s is reported, and revoke refuses to overwrite it",
    async (_, content) => {
      const path = fresh();
      writeFileSync(path, content);
      const store = new FileRevocationStore(path);
      expect(store.lastError).toBeInstanceOf(AllowanceError);
      expect(store.lastError?.code).toBe("ERR_REVOCATION_UNAVAILABLE");
      const { ids } = await threeLinks();
      const error = refusal(() => store.revoke(ids[0] as string));
      expect(error.code).toBe("ERR_REVOCATION_UNAVAILABLE");
      expect(error.message).toMatch(/^cannot revoke: .* is unreadable: /);
      expect(readFileSync(path)).toEqual(Buffer.from(content));
      expect(existsSync(`${path}.lock`)).toBe(false);
    },
  );

  it.each(HOSTILE)(
    "regression: a store that never read its list (a file holding %s from the start) accepted every token; now verify refuses each with ERR_REVOCATION_UNAVAILABLE until a good read",
    async (_, content) => {
      const { token, roots, ids } = await threeLinks();
      const path = fresh();
      writeFileSync(path, content);
      const store = new FileRevocationStore(path, { checkIntervalMs: 0 });
      const check = () => verify(token, { roots, now: () => NOW * 1000, revocations: store });
      expect(refusal(check).code).toBe("ERR_REVOCATION_UNAVAILABLE");
      expect(refusal(() => store.has(ids[0] as string)).code).toBe("ERR_REVOCATION_UNAVAILABLE");
      // lastError is read-only: nobody can clear it to make the store look healthy.
      expect(() => {
        (store as { lastError: unknown }).lastError = undefined;
      }).toThrow(TypeError);
      expect(store.lastError?.code).toBe("ERR_REVOCATION_UNAVAILABLE");
      expect(refusal(check).code).toBe("ERR_REVOCATION_UNAVAILABLE");
      // The file repaired (with another modification time): the list is read, the token verifies.
      writeFileSync(path, JSON.stringify({ version: 1, revoked: [] }));
      const later = new Date(Date.now() + 10_000);
      utimesSync(path, later, later);
      expect(check().linkIds).toEqual(ids);
      expect(store.lastError).toBeUndefined();
    },
  );

  it("a missing file is an empty list from the start: nothing is refused for it", async () => {
    const { token, roots, ids } = await threeLinks();
    const store = new FileRevocationStore(fresh());
    expect(store.lastError).toBeUndefined();
    expect(verify(token, { roots, now: () => NOW * 1000, revocations: store }).linkIds).toEqual(
      ids,
    );
  });

  it("a file that turns hostile, or into a directory, keeps refusing every id of the last good read", async () => {
    const { token, roots, ids } = await threeLinks();
    const path = fresh();
    const store = new FileRevocationStore(path, { checkIntervalMs: 0 });
    store.revoke(ids[1] as string);
    const verdict = () =>
      codeAndIndex(() => verify(token, { roots, now: () => NOW * 1000, revocations: store }));
    expect(verdict()).toEqual(["ERR_REVOKED", 1]);
    const turns: (readonly [string, () => void])[] = [
      ...HOSTILE.map(([name, content]) => [name, () => writeFileSync(path, content)] as const),
      // A list naming a good id beside a bad one is refused whole: the good id is not taken either.
      [
        "a good id beside a bad one",
        () => writeFileSync(path, JSON.stringify({ version: 1, revoked: [ids[2], "x"] })),
      ],
      [
        "a directory",
        () => {
          rmSync(path);
          mkdirSync(path);
        },
      ],
    ];
    for (const [i, [name, turn]] of turns.entries()) {
      turn();
      const later = new Date(Date.now() + 5000 + i * 1000);
      utimesSync(path, later, later);
      expect(verdict(), name).toEqual(["ERR_REVOKED", 1]);
      expect(store.lastError?.code, name).toBe("ERR_REVOCATION_UNAVAILABLE");
      expect(store.has(ids[2] as string), name).toBe(false);
    }
    expect(store.lastError?.message).toMatch(/^cannot read .*: EISDIR/);
    const error = refusal(() => store.revoke(ids[0] as string));
    expect(error.code).toBe("ERR_REVOCATION_UNAVAILABLE");
    expect(verdict()).toEqual(["ERR_REVOKED", 1]);
  });

  it("a path under a regular file can be neither read nor locked", async () => {
    const file = fresh();
    writeFileSync(file, '{"version":1,"revoked":[]}');
    const store = new FileRevocationStore(join(file, "revoked.json"));
    expect(store.lastError?.code).toBe("ERR_REVOCATION_UNAVAILABLE");
    expect(store.lastError?.message).toMatch(/ENOTDIR/);
    const { ids } = await threeLinks();
    const error = refusal(() => store.revoke(ids[0] as string));
    expect(error.code).toBe("ERR_REVOCATION_UNAVAILABLE");
    expect(error.message).toMatch(/^cannot revoke: cannot create .*revoked\.json\.lock: ENOTDIR/);
  });

  it("a write the system refuses is reported, leaves the file as it was and releases the lock", async () => {
    const path = fresh();
    const { ids } = await threeLinks();
    const store = new FileRevocationStore(path);
    store.revoke(ids[0] as string);
    const before = readFileSync(path, "utf8");
    // The temporary file's name taken by a directory: the write fails.
    mkdirSync(`${path}.${process.pid}.tmp`);
    const error = refusal(() => store.revoke(ids[1] as string));
    expect(error.code).toBe("ERR_REVOCATION_UNAVAILABLE");
    expect(error.message).toMatch(/^cannot revoke: cannot write .*: EISDIR/);
    expect(readFileSync(path, "utf8")).toBe(before);
    expect(existsSync(`${path}.lock`)).toBe(false);
    // Revoked here, not in the file: the caller was told.
    expect(store.has(ids[1] as string)).toBe(true);
    expect(new FileRevocationStore(path).list()).toEqual([ids[0]]);
  });

  it("gives up after 20 s on a lock that never turns stale, and leaves that lock alone", async () => {
    const path = fresh();
    const lock = `${path}.lock`;
    writeFileSync(lock, "another holder");
    // Modified in the future (a clock ahead, a network filesystem): never older than 10 s.
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(lock, future, future);
    const { ids } = await threeLinks();
    const store = new FileRevocationStore(path);
    // The 20 s wait is not an option: a clock that runs a second per look makes it pass at once.
    let nowMs = Date.now();
    const clock = vi.spyOn(Date, "now").mockImplementation(() => (nowMs += 1000));
    let error: AllowanceError;
    try {
      error = refusal(() => store.revoke(ids[0] as string));
    } finally {
      clock.mockRestore();
    }
    expect(error.code).toBe("ERR_REVOCATION_UNAVAILABLE");
    expect(error.message).toBe(`timed out waiting for ${lock}`);
    expect(readFileSync(lock, "utf8")).toBe("another holder");
    expect(existsSync(path)).toBe(false);
  });
});
