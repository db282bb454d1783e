/**
 * One process of the revocation store's multi-process test: revokes, one by one, the ids of each
 * message it gets from the parent, then answers "done"; says "ready" first.
 */
import { FileRevocationStore } from "@allowance/verifier/file";

const path = process.argv[2] as string;
const store = new FileRevocationStore(path);
process.on("message", (ids) => {
  if (ids === "exit") process.exit(0);
  for (const id of ids as string[]) store.revoke(id);
  process.send?.("done");
});
process.send?.("ready");
