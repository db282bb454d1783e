/**
 * Redis servers of a test's own, for what one shared server cannot show: persistence settings,
 * restarts, eviction, a cluster. Each listens on 127.0.0.1 on a free port, keeps its files in a
 * temporary directory, and is stopped (and its directory removed) by `stop()`. Needs redis-server
 * (and redis-cli for a cluster) on the PATH: `hasRedisServer` says whether they are there; CI
 * installs them (.ci/run), and there these tests must run, never skip.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

export function hasRedisServer(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    execFileSync("redis-cli", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.CI) throw new Error("redis-server and redis-cli are required in CI");
    console.warn("⚠ SKIPPING the Redis durability and cluster tests: no redis-server or redis-cli");
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server: "nosave" (a crash or an unpersisted restart), or "save". */
  stop(mode?: "nosave" | "save"): Promise<void>;
  /** Kills the server with SIGKILL: a crash, with no chance to write anything more. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory, with the same arguments. */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  dispose(): Promise<void>;
}

/** A redis-server started with `args` (after port, bind and dir). */
export async function startRedis(args: readonly string[]): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "allowance-redis-server-"));
  let child: ChildProcess | undefined;
  const start = async () => {
    const started = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, ...args],
      { stdio: "ignore" },
    );
    child = started;
    // A test process that ends without stopping it (a timed-out hook) takes it along.
    const orphaned = () => started.kill("SIGKILL");
    process.once("exit", orphaned);
    started.once("exit", () => process.off("exit", orphaned));
    await waitForPing(port);
  };
  const stop = async (mode: "nosave" | "save" = "nosave") => {
    const running = child;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    const client = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on("error", () => undefined);
    // A server that will not shut down (it refuses while AOF is first being written) is killed.
    const kill = setTimeout(() => running.kill("SIGKILL"), 3_000);
    try {
      await client.connect();
      await client.call("SHUTDOWN", mode.toUpperCase());
    } catch {
      // Refused, or the connection closed as the server went down.
    } finally {
      client.disconnect();
    }
    await exited;
    clearTimeout(kill);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    async kill() {
      const running = child;
      if (running === undefined || running.exitCode !== null) return;
      const exited = new Promise((resolve) => running.once("exit", resolve));
      running.kill("SIGKILL");
      await exited;
    },
    restart: start,
    async dispose() {
      await stop("nosave");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new Redis(port, "127.0.0.1", {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on("error", () => undefined);
    try {
      await client.connect();
      if ((await client.ping()) === "PONG") return;
    } catch {
      // not up yet
    } finally {
      client.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A cluster of `primaries` redis-servers on loopback, slots spread by redis-cli --cluster create. */
export async function startCluster(
  primaries: number,
  args: readonly string[],
): Promise<{ readonly nodes: readonly RedisServer[]; dispose(): Promise<void> }> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < primaries; i++)
      nodes.push(
        await startRedis([
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          "nodes.conf",
          "--cluster-node-timeout",
          "5000",
          ...args,
        ]),
      );
    execFileSync(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      { stdio: "ignore", timeout: 30_000 },
    );
    await waitForClusterOk(nodes);
  } catch (error) {
    await Promise.all(nodes.map((n) => n.dispose()));
    throw error;
  }
  return {
    nodes,
    dispose: async () => {
      await Promise.all(nodes.map((n) => n.dispose()));
    },
  };
}

async function waitForClusterOk(nodes: readonly RedisServer[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    let ok = true;
    for (const node of nodes) {
      const client = new Redis(node.port, "127.0.0.1");
      try {
        const info = (await client.call("CLUSTER", "INFO")) as string;
        if (!info.includes("cluster_state:ok")) ok = false;
      } finally {
        client.disconnect();
      }
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error("the cluster did not reach cluster_state:ok");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
