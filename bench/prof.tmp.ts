import { formatToken, nodeBackend, parseToken, type Ed25519Backend } from "@allowance/core";
import { LruPrefixCache, createVerifier, type PrefixCache } from "@allowance/verifier";
import { fiveLinkStory } from "./verify.js";
const now = Math.floor(Date.now()/1000);
const { token, roots } = await fiveLinkStory(now);
const text = formatToken(token);
const fake: Ed25519Backend = { ...nodeBackend, verifyEquation() { return true; } };
const inner = new LruPrefixCache();
const prefixOnly: PrefixCache = { get: (k) => inner.get(k), set: (e) => (e.links.length <= 4 ? inner.set(e) : undefined), get size() { return inner.size; }, clear: () => inner.clear() };
const v = createVerifier({ roots, cache: prefixOnly, backend: fake });
v.verify(text, { now });
const t = (name: string, n: number, f: () => unknown) => { for (let i=0;i<500;i++) f(); const s = process.cpuUsage(); for (let i=0;i<n;i++) f(); const u = process.cpuUsage(s); console.log(name.padEnd(20), ((u.user+u.system)/n).toFixed(2), "µs cpu"); };
for (let r = 0; r < 3; r++) { t("cached no-sig", 20000, () => v.verify(text, { now })); t("parse", 20000, () => parseToken(text)); }
if (process.argv[2] === "prof") for (let i = 0; i < 100000; i++) v.verify(text, { now });
