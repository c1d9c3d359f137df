/**
 * `stargz-ipfs image <command>`: image commands, one module each, loaded on use.
 * Each exports `run(args): Promise<number>` like the command groups in main.ts.
 */
type Command = { summary: string; load: () => Promise<{ run(args: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  'ipfs-push': { summary: 'convert an image in containerd to eStargz and publish it to IPFS', load: () => import('./ipfs-push-cmd.js') },
  rpull: { summary: 'pull an image from IPFS by CID into containerd and unpack it (lazily with stargz)', load: () => import('./rpull-cmd.js') },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: stargz-ipfs image <command> [flags]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function run(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`stargz-ipfs image: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  return (await cmd.load()).run(rest);
}
