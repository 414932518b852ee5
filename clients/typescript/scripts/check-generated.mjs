// Fails when src/generated/schema.ts is not what `npm run generate` makes of ../../openapi.json today.
// It runs the generate script's own command line, with the output sent to a scratch file.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [tool, ...args] = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.generate.split(/\s+/);
const output = args.indexOf("--output") + 1;
const scratch = mkdtempSync(join(tmpdir(), "klineo-ts-"));
try {
  const committed = readFileSync(join(root, args[output]), "utf8");
  args[output] = join(scratch, "schema.ts");
  execFileSync(join(root, "node_modules", ".bin", tool), args, { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  if (readFileSync(args[output], "utf8") !== committed) {
    console.error("clients/typescript/src/generated/schema.ts is stale: run `make ts-client` and commit the result.");
    process.exit(1);
  }
  console.log("generated types match openapi.json");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
