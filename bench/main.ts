/** `npm run bench -- <name> [options]`: benchmarks that print one JSON object each. */
import { runCircuitBench } from './circuit';
import { runDevicesBench } from './devices';
import { runIgBench } from './ig';
import { runQueryNeuronsBench } from './query-neurons';
import { runRelearnBench } from './relearn';
import { runShardsBench } from './shards';

const benches: Record<string, (argv: string[]) => Promise<void>> = { circuit: runCircuitBench, devices: runDevicesBench, ig: runIgBench, 'query-neurons': runQueryNeuronsBench, relearn: runRelearnBench, shards: runShardsBench };

const [name, ...rest] = process.argv.slice(2);
const bench = benches[name ?? ''];
if (!bench) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [options]\n`);
  process.exit(2);
}
bench(rest).catch((error) => {
  process.stderr.write(`${error.code ?? 'E_BENCH'}: ${error.message}\n`);
  process.exit(1);
});
