// Validates prometheus-operator objects (ServiceMonitor, PodMonitor, PrometheusRule, AlertmanagerConfig) with the
// JSON schemas npm's @kubernetes-models/prometheus-operator ships. Reads a JSON array of objects on stdin, prints a
// JSON array of {kind, name, error} (error null when valid). The package folder is argv[2] (scripts/install.sh).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(process.argv[2], "node_modules/@kubernetes-models/prometheus-operator");
const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  const [group, version] = object.apiVersion.split("/");
  const module = await import(pathToFileURL(join(root, group, version, `${object.kind}.js`)).href);
  let error = null;
  try {
    new module[object.kind](object).validate();
  } catch (exc) {
    error = String(exc && exc.message ? exc.message : exc);
  }
  results.push({ kind: object.kind, name: object.metadata.name, error });
}
process.stdout.write(JSON.stringify(results));
