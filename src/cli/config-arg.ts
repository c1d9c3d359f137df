import { loadConfig, ConfigError, type LoadedConfig } from '../config/load.js';

/**
 * The config every command reads: on a bad file, one line `<command>: invalid config: …`
 * on stderr and undefined (the caller exits 2); other failures throw.
 */
export async function loadConfigForCommand(command: string, path: string | undefined): Promise<LoadedConfig | undefined> {
  try {
    return await loadConfig(path);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${command}: invalid config: ${err.message}\n`);
    return undefined;
  }
}
