/**
 * Shell completion scripts for bash, zsh and fish, written from the program's own commands and options (see
 * completionSpec in cli/program.ts), so they cannot drift from it. Gitspace names come from the hidden `__names`
 * command at completion time.
 */

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export interface CompletionOption {
  /** `--name`, `--no-wait`. */
  flag: string;
  description: string;
  takesValue: boolean;
  choices?: readonly string[];
}

export interface CompletionCommand {
  name: string;
  description: string;
  options: CompletionOption[];
  /** What the first argument is: a gitspace (completed with names), one of some words, or free text. */
  argument?: { gitspace: true } | { choices: readonly string[] } | { name: string };
}

export interface CompletionSpec {
  program: string;
  commands: CompletionCommand[];
  /** Options every command takes (--json, --help). */
  globalOptions: CompletionOption[];
}

/** The hidden command that prints one gitspace name per line for completion. */
export const NAMES_COMMAND = '__names';

export function completionScript(shell: Shell, spec: CompletionSpec): string {
  switch (shell) {
    case 'bash':
      return bashScript(spec);
    case 'zsh':
      return zshScript(spec);
    case 'fish':
      return fishScript(spec);
  }
}

const optionsOf = (spec: CompletionSpec, command: CompletionCommand) => [...command.options, ...spec.globalOptions];
const shellWord = /^[A-Za-z0-9_.,:/=+-]+$/;
/** Only plain words go into the scripts unquoted; anything else would be a program bug, caught here. */
function word(value: string): string {
  if (!shellWord.test(value)) throw new Error(`not a plain word for a completion script: ${value}`);
  return value;
}
/** A description inside single quotes (fish, zsh) and zsh's [...]: nothing in it may end or break them. */
const described = (text: string) =>
  text
    .replace(/'/g, '’')
    .replace(/[[\]\\]/g, '')
    .replace(/\s+/g, ' ');

function bashScript(spec: CompletionSpec): string {
  const fn = `_${word(spec.program).replace(/[^A-Za-z0-9_]/g, '_')}`;
  const topWords = [...spec.commands.map((c) => word(c.name)), ...spec.globalOptions.map((o) => word(o.flag))];
  const cases = spec.commands.map((command) => {
    const options = optionsOf(spec, command);
    const values = options
      .filter((o) => o.takesValue)
      .map(
        (o) =>
          `        ${word(o.flag)}) ${o.choices ? `COMPREPLY=($(compgen -W "${o.choices.map(word).join(' ')}" -- "$cur"))` : 'COMPREPLY=()'}; return ;;`,
      );
    const argument = command.argument;
    const positional =
      argument && 'gitspace' in argument
        ? `local IFS=$'\\n'; COMPREPLY=($(compgen -W "$(${spec.program} ${NAMES_COMMAND} 2>/dev/null)" -- "$cur"))`
        : argument && 'choices' in argument
          ? `COMPREPLY=($(compgen -W "${argument.choices.map(word).join(' ')}" -- "$cur"))`
          : 'COMPREPLY=()';
    return [
      `    ${word(command.name)})`,
      ...(values.length ? ['      case "$prev" in', ...values, '      esac'] : []),
      `      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "${options.map((o) => word(o.flag)).join(' ')}" -- "$cur")); else ${positional}; fi`,
      '      ;;',
    ].join('\n');
  });
  return `# ${spec.program} completion for bash: add to ~/.bashrc
#   source <(${spec.program} completion bash)
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" command="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) command="\${COMP_WORDS[i]}"; break ;; esac
  done
  if [[ -z "$command" ]]; then
    COMPREPLY=($(compgen -W "${topWords.join(' ')}" -- "$cur"))
    return
  fi
  case "$command" in
${cases.join('\n')}
  esac
}
complete -F ${fn} ${spec.program}
`;
}

function zshScript(spec: CompletionSpec): string {
  const program = word(spec.program);
  const commandList = spec.commands.map((c) => `    '${word(c.name)}:${described(c.description)}'`);
  const cases = spec.commands.map((command) => {
    const specs = optionsOf(spec, command).map((o) => {
      const value = o.takesValue
        ? `:${word(o.flag.replace(/^--/, ''))}:${o.choices ? `(${o.choices.map(word).join(' ')})` : ''}`
        : '';
      return `'${word(o.flag)}[${described(o.description)}]${value}'`;
    });
    const argument = command.argument;
    if (argument && 'gitspace' in argument) specs.push(`'1:gitspace:_${program}_names'`);
    else if (argument && 'choices' in argument)
      specs.push(`'1:${described('value')}:(${argument.choices.map(word).join(' ')})'`);
    else if (argument) specs.push(`'1:${described(argument.name)}:'`);
    return `    ${word(command.name)}) _arguments ${specs.join(' ')} ;;`;
  });
  return `#compdef ${program}
# ${program} completion for zsh: add to ~/.zshrc (after compinit)
#   source <(${program} completion zsh)
_${program}_names() {
  local -a names
  names=(\${(f)"$(${program} ${NAMES_COMMAND} 2>/dev/null)"})
  _describe 'gitspace' names
}
_${program}() {
  local -a commands
  commands=(
${commandList.join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  shift words
  (( CURRENT-- ))
  case $words[1] in
${cases.join('\n')}
  esac
}
compdef _${program} ${program}
`;
}

function fishScript(spec: CompletionSpec): string {
  const program = word(spec.program);
  const lines = [
    `# ${program} completion for fish: ${program} completion fish > ~/.config/fish/completions/${program}.fish`,
    `complete -c ${program} -f`,
    ...spec.commands.map(
      (c) => `complete -c ${program} -n __fish_use_subcommand -a ${word(c.name)} -d '${described(c.description)}'`,
    ),
  ];
  for (const command of spec.commands) {
    const when = `-n '__fish_seen_subcommand_from ${word(command.name)}'`;
    for (const option of optionsOf(spec, command)) {
      const value = option.choices ? ` -x -a '${option.choices.map(word).join(' ')}'` : option.takesValue ? ' -r' : '';
      lines.push(
        `complete -c ${program} ${when} -l ${word(option.flag.replace(/^--/, ''))}${value} -d '${described(option.description)}'`,
      );
    }
    const argument = command.argument;
    if (argument && 'gitspace' in argument)
      lines.push(`complete -c ${program} ${when} -a '(${program} ${NAMES_COMMAND} 2>/dev/null)'`);
    else if (argument && 'choices' in argument)
      lines.push(`complete -c ${program} ${when} -a '${argument.choices.map(word).join(' ')}'`);
  }
  return `${lines.join('\n')}\n`;
}
