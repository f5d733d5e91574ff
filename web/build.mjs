// Builds the dashboard into src/lungcad/service/web_dist/ (served by the API under /ui/static):
// every web/src/pages/<name>.js becomes pages/<name>.js (ES modules, shared code split into chunks/),
// web/src/app.css becomes app.css.  Everything is bundled: the pages fetch nothing from other origins.
import { build } from "esbuild";
import { readdirSync, rmSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "lungcad", "service", "web_dist");
const pages = readdirSync(join(here, "src", "pages")).filter((f) => f.endsWith(".js"));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: pages.map((f) => ({ in: join(here, "src", "pages", f), out: `pages/${f.replace(/\.js$/, "")}` })),
  outdir: out,
  bundle: true,
  format: "esm",
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  minify: true,
  sourcemap: false,
  target: ["chrome110", "firefox115", "safari16"],
  legalComments: "linked",
  logLevel: "warning",
});
await build({
  entryPoints: [join(here, "src", "app.css")],
  outfile: join(out, "app.css"),
  bundle: true,
  minify: true,
  logLevel: "warning",
});
// the research and operations pages' own styles (batches, models, training, experiments, operations)
await build({
  entryPoints: [join(here, "src", "pages.css")],
  outfile: join(out, "pages.css"),
  bundle: true,
  minify: true,
  logLevel: "warning",
});
console.log(`built ${pages.length} pages into ${out}`);
