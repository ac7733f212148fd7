// What a typed line means, and Tab completion: the terminal client's
// vocabulary (client/src/command/table.rs), plus the short names people
// try first (!msg, !who, !join, !leave, !create, !back). Pure functions
// over the line: app.js carries the actions out.

/** Every command, as !help lists it: [usage, what it does, other spellings]. */
export const COMMANDS = [
  ['!private <nick> <message>', 'send a message to one person only (alone: open the conversation)', ['!msg', '!m', '!query']],
  ['!online', 'list who is online, with their away texts', ['!who', '!names']],
  ['!away [text]', 'say you are away, and why (others see it in !online); alone: back', []],
  ['!back', 'you are back', []],
  ['!history [nick|#group] [N]', 'the last N messages (20) to everyone, or with nick / in #group', []],
  ['!search <words> [from:nick]', 'search everything you may read, newest first; a word ending in * matches as a prefix', []],
  ['!group create <name> [--public] [nick…]', 'a group you own, with these members and you', ['!create']],
  ['!group add|remove <name> <nick…>', 'change the members (the owner only)', []],
  ['!group join|leave <name>', 'join a public group, leave any', ['!join', '!leave', '!part']],
  ['!group list', 'your groups, then the public ones you could join', ['!groups']],
  ['!group members <name>', 'who is in it, and who of them is online', ['!members']],
  ['!group <name> <message>', 'a message to every member (also: #name message)', []],
  ['!send [nick|#group]', 'offer a file (to the open conversation, or to nick / #group)', []],
  ['!accept <id>', 'download an offered file', []],
  ['!reject <id>', 'refuse an offered file; the sender is told', []],
  ['!password', 'change your password', []],
  ['!help', 'show this list', []],
  ['!bye', 'leave the chat (also .exit)', ['.exit']],
];

/** The names Tab offers at the start of a line. */
export const COMMAND_NAMES = [
  ...new Set(COMMANDS.flatMap(([usage, , aliases]) => [usage.split(' ')[0], ...aliases]).filter((n) => n.startsWith('!'))),
].sort();

export const GROUP_SUBCOMMANDS = ['create', 'add', 'remove', 'join', 'leave', 'list', 'members'];

/** The !help text, one line per command. */
export function helpLines() {
  return [
    'type a line to send it to the open conversation, or a command:',
    ...COMMANDS.map(([usage, help, aliases]) => `${usage} — ${help}${aliases.length ? ` (also ${aliases.join(', ')})` : ''}`),
    'Tab completes commands, nicknames and #groups; a line starting with / is not sent (type //text to send /text).',
  ];
}

// IRC habits: what to type here instead.
const SLASH = {
  '/msg': '!msg <nick> <message>',
  '/query': '!msg <nick> <message>',
  '/m': '!msg <nick> <message>',
  '/join': '!join #group',
  '/j': '!join #group',
  '/part': '!leave #group',
  '/leave': '!leave #group',
  '/names': '!online',
  '/who': '!online',
  '/quit': '!bye',
  '/exit': '!bye',
  '/away': '!away [text]',
  '/help': '!help',
  '/nick': null,
};

const groupTag = (name) => (name.startsWith('#') ? name : `#${name}`);
const words = (s) => s.trim().split(/\s+/).filter(Boolean);

/**
 * What `line` asks for. `open` is the receiver of the open conversation
 * ('*', a nick, or '#group'). Returns {kind, …}; kind 'hint' carries a
 * usage or advice to show instead of sending anything.
 */
export function parseLine(line, open) {
  const text = line.replace(/[\r\n]+$/, '');
  const trimmed = text.trim();
  if (!trimmed) return { kind: 'none' };
  if (trimmed.startsWith('//')) return { kind: 'say', receiver: open, text: text.replace('//', '/') };
  if (trimmed.startsWith('/')) {
    const word = trimmed.split(/\s/)[0].toLowerCase();
    if (word === '/me' && trimmed.length > 4) return { kind: 'say', receiver: open, text: trimmed };
    if (word === '/nick') return { kind: 'hint', text: 'nicknames cannot be changed: each is an account; log out and log in as another' };
    const instead = SLASH[word];
    return {
      kind: 'hint',
      text: instead
        ? `commands start with ! here: try ${instead}`
        : `${word} is not a command here: commands start with ! (try !help); to send a line starting with /, type //`,
    };
  }
  if (trimmed === '.exit') return { kind: 'bye' };
  // "#name message" goes to the group, as in the terminal client.
  const toGroup = /^(#\S+)\s+(\S[\s\S]*)$/.exec(text);
  if (toGroup && toGroup[1].length > 1) return { kind: 'say', receiver: toGroup[1], text: toGroup[2] };
  if (!trimmed.startsWith('!')) return { kind: 'say', receiver: open, text };

  const [cmd, ...args] = words(trimmed);
  const rest = trimmed.slice(cmd.length).trim();
  const usage = (u) => ({ kind: 'hint', text: `usage: ${u}` });
  switch (cmd.toLowerCase()) {
    case '!private':
    case '!msg':
    case '!m':
    case '!query': {
      if (!args.length) return usage('!msg <nick> <message>');
      const body = rest.slice(args[0].length).trim();
      if (!body) return { kind: 'open', conv: args[0].startsWith('#') ? groupTag(args[0]) : `@${args[0]}` };
      return { kind: 'say', receiver: args[0], text: body };
    }
    case '!online':
    case '!who':
    case '!names':
      return { kind: 'online' };
    case '!away':
      return { kind: 'away', text: rest };
    case '!back':
      return { kind: 'away', text: '' };
    case '!history': {
      let limit = 20;
      let target = null;
      if (args.length && /^\d+$/.test(args[args.length - 1]) && (args.length === 2 || args.length === 1)) {
        limit = Number(args[args.length - 1]);
        if (args.length === 2) target = args[0];
      } else if (args.length === 1) {
        target = args[0];
      } else if (args.length > 2) {
        return usage('!history [nick|#group] [N]');
      }
      return { kind: 'history', target, limit: Math.max(1, limit) };
    }
    case '!search': {
      let from;
      const terms = [];
      for (const w of args) {
        if (w.toLowerCase().startsWith('from:') && w.length > 5 && from === undefined) from = w.slice(5);
        else terms.push(w);
      }
      if (!terms.length) return usage('!search <words> [from:nick]');
      return { kind: 'search', words: terms.join(' '), from };
    }
    case '!group':
      return parseGroup(args, rest);
    case '!join':
    case '!leave':
    case '!part':
    case '!members':
      if (args.length !== 1) return usage(`${cmd} #group`);
      return { kind: 'group', op: { '!join': 'join', '!leave': 'leave', '!part': 'leave', '!members': 'members' }[cmd.toLowerCase()], name: groupTag(args[0]) };
    case '!create':
      return parseGroup(['create', ...args], `create ${rest}`);
    case '!groups':
      return { kind: 'group', op: 'list' };
    case '!send':
      if (args.length > 1) return { kind: 'hint', text: 'usage: !send [nick|#group] — then pick the file (or drop it on the messages)' };
      return { kind: 'send', to: args[0] };
    case '!accept':
    case '!reject':
      if (args.length < 1 || !/^\d+$/.test(args[0])) return usage(`${cmd} <id>`);
      return { kind: cmd.slice(1).toLowerCase(), id: Number(args[0]) };
    case '!password':
      return { kind: 'password' };
    case '!help':
      return { kind: 'help' };
    case '!bye':
    case '!quit':
      return { kind: 'bye' };
    default:
      return { kind: 'hint', text: `${cmd} is not a command: !help lists them` };
  }
}

function parseGroup(args, rest) {
  const usage = { kind: 'hint', text: 'usage: !group create|add|remove|join|leave|members <name> …, !group list, or !group <name> <message>' };
  if (!args.length) return usage;
  const sub = args[0].toLowerCase();
  if (sub === 'list') return { kind: 'group', op: 'list' };
  if (!GROUP_SUBCOMMANDS.includes(sub)) {
    // !group <name> <message>
    const body = rest.slice(args[0].length).trim();
    if (!body) return usage;
    return { kind: 'say', receiver: groupTag(args[0]), text: body };
  }
  if (args.length < 2) return { kind: 'hint', text: `usage: !group ${sub} <name>${['add', 'remove'].includes(sub) ? ' <nick…>' : ''}` };
  const name = groupTag(args[1]);
  const more = args.slice(2);
  if (sub === 'create') {
    const isPublic = more.includes('--public');
    return { kind: 'group', op: 'create', name, members: more.filter((m) => m !== '--public'), public: isPublic };
  }
  if (sub === 'add' || sub === 'remove') {
    if (!more.length) return { kind: 'hint', text: `usage: !group ${sub} <name> <nick…>` };
    return { kind: 'group', op: sub, name, members: more };
  }
  return { kind: 'group', op: sub, name };
}

/** The longest prefix all of `names` share, ignoring case (spelled as the first). */
function commonPrefix(names) {
  let prefix = names[0];
  for (const n of names.slice(1)) {
    let i = 0;
    while (i < prefix.length && i < n.length && prefix[i].toLowerCase() === n[i].toLowerCase()) i++;
    prefix = prefix.slice(0, i);
  }
  return prefix;
}

/**
 * Tab at `cursor` in `value`. `nicks` and `groups` (with '#') are the
 * candidates. Returns null when there is nothing to complete (Tab then
 * moves the focus, as it should), else {value, cursor, candidates}.
 */
export function complete(value, cursor, nicks, groups) {
  const before = value.slice(0, cursor);
  const start = before.search(/\S*$/);
  const word = before.slice(start);
  if (!word) return null;
  const lineWords = words(before);
  const first = lineWords[0] || '';
  let pool;
  let atLineStart = false;
  if (start === 0 && word.startsWith('!')) {
    pool = COMMAND_NAMES;
  } else if (word.startsWith('#')) {
    pool = groups;
  } else if (first.toLowerCase() === '!group' && lineWords.length === 2 && start > 0) {
    pool = [...GROUP_SUBCOMMANDS, ...groups.map((g) => g.slice(1))];
  } else {
    let w = word;
    if (w.toLowerCase().startsWith('from:')) w = w.slice(5);
    pool = nicks.map((n) => (word.toLowerCase().startsWith('from:') ? `${word.slice(0, 5)}${n}` : n));
    atLineStart = start === 0;
    if (!w) return null;
  }
  const lower = word.toLowerCase();
  const matches = [...new Set(pool.filter((n) => n.toLowerCase().startsWith(lower)))].sort((a, b) => a.localeCompare(b));
  if (!matches.length) return { value, cursor, candidates: [] };
  let insert;
  if (matches.length === 1) {
    insert = matches[0] + (atLineStart ? ': ' : ' ');
  } else {
    insert = commonPrefix(matches);
    if (insert.length < word.length) insert = word;
  }
  const after = value.slice(cursor);
  return {
    value: value.slice(0, start) + insert + after,
    cursor: start + insert.length,
    candidates: matches.length > 1 ? matches : [],
  };
}
