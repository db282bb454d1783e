/** The most prototypes walked above an options object: a Proxy can report a chain without end. */
const MAX_PROTOTYPES = 64;

/**
 * The members of a caller's options object, each read once as a property read finds it (its own,
 * or one its own prototypes hold: a class's getters), but never one only an `Object.prototype`
 * holds (this realm's or another's: a polluted `Object.prototype.backend` is no option anyone
 * gave). Any other name on the object or those prototypes (but `constructor`) is refused with
 * `unknown(name)`: a misspelt member, own or inherited, never leaves its option at its default.
 * Absent and undefined members are left out of the result, which has no prototype.
 */
export function membersOf(
  object: object,
  known: ReadonlySet<string>,
  what: string,
  unknown: (name: string) => never,
): Record<string, unknown> {
  const holders: object[] = [];
  for (
    let holder: object | null = object;
    holder !== null && (holder === object || !isObjectPrototype(holder));
    holder = Object.getPrototypeOf(holder) as object | null
  ) {
    if (holders.length > MAX_PROTOTYPES)
      throw new TypeError(`"${what}" has more than ${MAX_PROTOTYPES} prototypes`);
    holders.push(holder);
  }
  const found = new Set<string>();
  for (const holder of holders)
    for (const name of Object.getOwnPropertyNames(holder)) {
      if (holder !== object && name === "constructor") continue;
      if (!known.has(name)) unknown(name);
      found.add(name);
    }
  const members = Object.create(null) as Record<string, unknown>;
  for (const name of known) {
    if (!found.has(name)) continue;
    const value: unknown = (object as Record<string, unknown>)[name];
    if (value !== undefined) members[name] = value;
  }
  return members;
}

/** Whether `holder` is a realm's Object.prototype: this one, or one with no prototype and its methods. */
function isObjectPrototype(holder: object): boolean {
  return (
    holder === Object.prototype ||
    (Object.getPrototypeOf(holder) === null &&
      Object.hasOwn(holder, "hasOwnProperty") &&
      Object.hasOwn(holder, "isPrototypeOf"))
  );
}
