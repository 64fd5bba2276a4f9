/**
 * A small argument parser for the CLI: `command --flag value --switch positional`. Unknown
 * flags are errors that name the flag, because a silently ignored typo in a training
 * command wastes a GPU hour.
 */
export interface ParsedArgs {
  command: string | undefined;
  flags: Map<string, string | true>;
  positionals: string[];
}

export class UsageError extends Error {
  override name = "UsageError";
}

/** Each allowed flag and whether it takes a value or is a switch. */
export type FlagSpec = Readonly<Record<string, "value" | "switch">>;

export function parseArgs(argv: string[], flagSpec: FlagSpec): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  let command: string | undefined;
  for (let index = 0; index < argv.length; index++) {
    const token = argv[index] ?? "";
    if (token.startsWith("--")) {
      const [name = "", inlineValue] = token.slice(2).split("=", 2);
      const kind = flagSpec[name];
      if (kind === undefined) throw new UsageError(`Unknown option --${name}.`);
      const next = argv[index + 1];
      if (kind === "switch") {
        if (inlineValue !== undefined) throw new UsageError(`--${name} is a switch and takes no value.`);
        flags.set(name, true);
      } else if (inlineValue !== undefined) flags.set(name, inlineValue);
      else if (next !== undefined && !next.startsWith("--")) {
        flags.set(name, next);
        index++;
      } else flags.set(name, true);
    } else if (command === undefined) command = token;
    else positionals.push(token);
  }
  return { command, flags, positionals };
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags.get(name);
  if (value === true) throw new UsageError(`--${name} needs a value.`);
  return value;
}

export function integerFlag(args: ParsedArgs, name: string): number | undefined {
  const value = stringFlag(args, name);
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new UsageError(`--${name} must be a whole number, got "${value}".`);
  return parsed;
}
