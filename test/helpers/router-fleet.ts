// lives in harness/ so benchmarks can start one without importing test/
export { routerFleetConfig, routerFleetYaml, startTestRouter, usageRecords, type RouterFleetOptions } from "../../harness/index.js";
