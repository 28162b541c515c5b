import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('## Metrics and tracing'), readme.indexOf('## Node versions'));

/** The curl lines of the README's "Metrics and tracing" bash blocks, as written there. */
export const metricsCurls = [...section.matchAll(/```bash\n([\s\S]*?)```/g)]
  .flatMap((block) => (block[1] ?? '').split('\n'))
  .filter((line) => line.startsWith('curl '));

/** Runs a README line in bash against `url` instead of localhost:5000, `s3cret` replaced by `token`. */
export async function runReadmeLine(line: string, url: string, token = 's3cret'): Promise<string> {
  const { stdout } = await run('bash', [
    '-c',
    line.replaceAll('http://localhost:5000', url).replaceAll('s3cret', token),
  ]);
  return stdout;
}
