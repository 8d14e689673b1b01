// Validates custom resources against the validators that @kubernetes-models generates from the upstream CRDs
// (KEDA, prometheus-operator): kubernetes-validate knows the core kinds only.
//   node validate_crds.mjs <node_modules dir>  < objects.json   ->  [{"kind", "name", "errors": [...]}, ...]
// The validators check types, required fields and enums; unknown fields are not reported (test_helm.py checks
// the structure of these objects itself).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js",
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
  "monitoring.coreos.com/v1/PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
};

const nodeModules = process.argv[2];
const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const obj of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const result = { kind: obj.kind, name: obj.metadata?.name, errors: [] };
  if (!(key in MODELS)) {
    result.errors.push(`no validator for ${key}`);
  } else {
    const module = await import(pathToFileURL(join(nodeModules, MODELS[key])).href);
    try {
      new module[obj.kind](obj).validate();
    } catch (error) {
      result.errors.push(String(error.message ?? error));
    }
  }
  results.push(result);
}
process.stdout.write(JSON.stringify(results));
