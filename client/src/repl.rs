//! Interactive mode: a nickname prompt and a hidden password prompt, then a
//! line editor (`>> `) with history and Tab completion, while events are
//! printed above the prompt.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Local;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Editor, Event, EventContext, EventHandler,
    ExternalPrinter, KeyEvent, Movement, RepeatCount,
};

use chat_common::ErrorCode;

use crate::command::{self, Command, Line, Local as Typed};
use crate::complete::ChatHelper;
use crate::digest::Digest;
use crate::files::Progress;
use crate::net::{self, Net, Output, Status};
use crate::platform;
use crate::progress::Bars;
use crate::refusal::{refusal, Next};
use crate::render::clean;
use crate::render::Renderer;
use crate::roster::SharedRoster;
use crate::session::{Ending, Notice};
use crate::status::{attention, PromptStatus};
use crate::{exit_code, Config};

/// How long to wait for the outbox to empty and the server to acknowledge
/// our bye.
const LEAVE_PATIENCE: Duration = Duration::from_secs(5);

/// What the user interface and the network thread both need to know about
/// the end.
#[derive(Default)]
struct Flags {
    /// The network thread has finished (set before it interrupts readline).
    done: AtomicBool,
    /// The user interface waits for the end on the status channel, not in
    /// readline, so it needs no interrupting.
    waiting: AtomicBool,
    /// The prompt's status changed while the line was empty: readline was
    /// interrupted to be started again with the new prompt.
    redraw: AtomicBool,
}

/// Prints events above the prompt through rustyline's external printer, so
/// a half-typed line survives.
struct ReplOutput<P> {
    /// Shared with the progress bars, which print through it too.
    printer: Arc<Mutex<P>>,
    renderer: Renderer,
    flags: Arc<Flags>,
    bars: Bars,
    /// Holds our private messages' lines back for their states.
    digest: Digest,
    /// What the prompt says, updated from what is printed.
    status: Arc<Mutex<PromptStatus>>,
    /// Whether the line being edited is empty (from the editor's helper).
    empty: Arc<AtomicBool>,
    /// `--bell`.
    bell: bool,
}

impl<P: ExternalPrinter + Send> ReplOutput<P> {
    /// Shows `notice`, or holds it back for a moment (our private
    /// messages, see [`Digest`]).
    fn show(&mut self, notice: &Notice) {
        for notice in self.digest.notice(notice, Instant::now()) {
            self.print(&notice);
        }
    }

    fn print(&mut self, notice: &Notice) {
        let me = self.status.lock().expect("the status").nick.clone();
        let (marked, caught_up) = attention(notice, me.as_deref());
        let line = self.renderer.line_marked(notice, Local::now(), marked);
        // One BEL per such line, through the printer like the line.
        let bell = if marked && self.bell && !caught_up {
            "\x07"
        } else {
            ""
        };
        // The printer adds no newline when the terminal is not in raw mode.
        let _ = self
            .printer
            .lock()
            .expect("the printer")
            .print(format!("{line}{bell}\n"));
        let changed = self.status.lock().expect("the status").note(notice);
        // rustyline draws the prompt given to readline and cannot be told
        // another; with nothing typed, readline can be started again.
        if changed
            && self.empty.load(Ordering::SeqCst)
            && !self.flags.waiting.load(Ordering::SeqCst)
            && !self.flags.done.load(Ordering::SeqCst)
        {
            self.flags.redraw.store(true, Ordering::SeqCst);
            platform::interrupt_prompt();
        }
    }
}

impl<P: ExternalPrinter + Send + 'static> Output for ReplOutput<P> {
    fn progress(&mut self, progress: &Progress) {
        self.bars.update(progress);
    }

    fn frame(&mut self, _raw: &str, notices: &[Notice]) {
        for notice in notices {
            self.show(notice);
        }
    }

    fn connection(&mut self, notice: &Notice) {
        self.show(notice);
    }

    fn due(&self) -> Option<Instant> {
        self.digest.due()
    }

    fn tick(&mut self) {
        for notice in self.digest.tick(Instant::now()) {
            self.print(&notice);
        }
    }

    /// Wakes the user interface if it sits in `readline`, which has no way
    /// to be cancelled from another thread. rustyline turns SIGINT into
    /// `ReadlineError::Interrupted` while its editor exists (restoring the
    /// terminal as it returns), so the network thread sends the process a
    /// SIGINT; `done` tells the interface it was not the user's Ctrl-C.
    fn finishing(&mut self) {
        for notice in self.digest.flush() {
            self.print(&notice);
        }
        self.flags.done.store(true, Ordering::SeqCst);
        if self.flags.waiting.load(Ordering::SeqCst) {
            return;
        }
        // readline checks for signals before drawing queued lines; give it a
        // moment to draw the last ones (such as the shutdown notice). 100 ms
        // lost the last line about 1 run in 15 on a loaded 2-core machine
        // (`interactive::server_lost_at_the_nickname_prompt`).
        thread::sleep(Duration::from_millis(250));
        // Delivered before `Status::Finished` is sent, so while rustyline's
        // handler is still installed.
        platform::interrupt_prompt();
    }
}

/// rustyline's external printer, noting whether it wrote straight to the
/// terminal: it does outside raw mode, so such a line may sit below the
/// line just typed, which must then not be taken off the screen.
struct Stamped {
    inner: Box<dyn ExternalPrinter + Send>,
    /// A print since the last readline began found the terminal in cooked
    /// mode. readline sets cooked mode before the printer's own switch to
    /// writing directly, and nothing sets raw mode again before the erase
    /// (which holds this printer's lock), so a direct write after
    /// readline's end always finds it cooked afterwards.
    direct: bool,
}

impl ExternalPrinter for Stamped {
    fn print(&mut self, msg: String) -> rustyline::Result<()> {
        let printed = self.inner.print(msg);
        if platform::cooked() {
            self.direct = true;
        }
        printed
    }
}

/// How many rows `prompt` and `line` took: rustyline moves to a new row
/// when a line fills the last one exactly, and Enter moves to the next.
fn rows_taken(prompt: &str, line: &str, columns: usize) -> usize {
    let width =
        unicode_width::UnicodeWidthStr::width(prompt) + unicode_width::UnicodeWidthStr::width(line);
    width / columns.max(1) + 1
}

/// More pasted lines than this at once are sent only if confirmed.
const PASTE_ASK: usize = 5;

/// The lines of what readline returned: a pasted block has line ends in
/// it. Blank lines are dropped, as Enter on an empty line sends nothing.
fn pasted(line: &str) -> Vec<&str> {
    line.split('\n').filter(|l| !l.trim().is_empty()).collect()
}

/// Whether a typed line will be shown again by the client (a message: its
/// echo or its `[private to …]` line), so the typed one can go.
fn shown_again(line: &Line) -> bool {
    matches!(line, Line::Command(Command::Say { .. }))
}

/// Ctrl-C as in bash and irssi: with something typed, it clears the line
/// (the text is lost on purpose, as there); on an empty line it leaves.
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        if ctx.line().is_empty() {
            // rustyline's own: `readline` returns `Interrupted`.
            None
        } else {
            Some(Cmd::Kill(Movement::WholeBuffer))
        }
    }
}

/// What was typed at a hidden prompt.
enum Hidden {
    Typed(String),
    /// Enter alone.
    Empty,
    /// Ctrl-C, or Ctrl-D on an empty line.
    Cancelled,
}

/// What follows a new nickname.
enum Choice {
    Password(String),
    OtherNick,
    Leave,
}

/// A line, or why there is none.
enum Input {
    Line(String),
    /// Ctrl-D or Ctrl-C: the user wants to leave.
    Quit,
    /// The network thread finished.
    Ended,
    /// Interrupted to draw a new prompt; nothing was typed.
    Redraw,
}

struct Repl {
    editor: Editor<ChatHelper, DefaultHistory>,
    status: Arc<Mutex<PromptStatus>>,
    printer: Arc<Mutex<Stamped>>,
    net: Net,
    flags: Arc<Flags>,
    renderer: Renderer,
}

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let colour = std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal();
    let renderer = Renderer { colour };
    let dial = config.dial();
    let mut servers = config.servers.clone();
    let stream = net::connect(&mut servers, &dial, &mut |notice| {
        println!("{}", renderer.line(notice, Local::now()))
    })?;
    let roster = SharedRoster::default();
    let mut editor = Editor::with_config(
        rustyline::Config::builder()
            .auto_add_history(false)
            .max_history_size(1000)?
            // Tab completes as far as the candidates agree; a second Tab
            // lists them (bash's way, and irssi's list of nicknames).
            .completion_type(CompletionType::List)
            .build(),
    )?;
    let helper = ChatHelper::new(roster.clone());
    let empty = helper.empty.clone();
    editor.set_helper(Some(helper));
    let status = Arc::new(Mutex::new(PromptStatus::default()));
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC)),
    );
    let printer = editor
        .create_external_printer()
        .context("cannot set up the terminal")?;
    let flags = Arc::new(Flags::default());
    let printer = Arc::new(Mutex::new(Stamped {
        inner: Box::new(printer),
        direct: false,
    }));
    let output = ReplOutput {
        bars: Bars::new(printer.clone(), renderer),
        printer: printer.clone(),
        renderer,
        flags: flags.clone(),
        digest: Digest::default(),
        status: status.clone(),
        empty,
        bell: config.bell,
    };
    // From here on the network thread may wake readline with a SIGINT,
    // which can come while the main thread waits elsewhere (for the login's
    // answer): it must not kill us there. Connecting, before, can still be
    // interrupted with Ctrl-C.
    platform::ignore_interrupts();
    let net = Net::spawn(
        stream,
        dial,
        config.options(None, servers),
        roster,
        Box::new(output),
    )
    .context("cannot start the network thread")?;
    if let Some(helper) = editor.helper_mut() {
        helper.set_net(net.handle());
    }
    let mut repl = Repl {
        editor,
        status,
        printer,
        net,
        flags,
        renderer,
    };
    if let Some(ending) = repl.login(config)? {
        return Ok(exit_code(ending));
    }
    let ending = repl.chat()?;
    Ok(exit_code(ending))
}

impl Repl {
    fn read(&mut self, prompt: &str) -> anyhow::Result<Input> {
        // A session that ended between two readlines: its wake-up signal
        // came while no readline was there to notice, so do not wait for a key.
        if self.flags.done.load(Ordering::SeqCst) {
            return Ok(Input::Ended);
        }
        self.printer.lock().expect("the printer").direct = false;
        match self.editor.readline(prompt) {
            Ok(line) => Ok(Input::Line(line)),
            Err(ReadlineError::Interrupted) if self.flags.done.load(Ordering::SeqCst) => {
                Ok(Input::Ended)
            }
            Err(ReadlineError::Interrupted) if self.flags.redraw.swap(false, Ordering::SeqCst) => {
                // The old prompt, alone on its row, goes.
                let mut out = io::stdout().lock();
                let _ = write!(out, "\r\x1b[K");
                let _ = out.flush();
                Ok(Input::Redraw)
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => Ok(Input::Quit),
            Err(err) => Err(err).context("cannot read the terminal"),
        }
    }

    /// Logs in, asking for a nickname and a password until they are
    /// accepted (a wrong password asks for the password again). A typed
    /// password logs in to an existing account only: a new nickname is
    /// said to be new, and its password asked for twice before the account
    /// is created, so a typo cannot lose the name. A password given by
    /// --password-file or CHAT_PASSWORD creates the account as it is.
    /// Returns the ending if the session ended instead.
    fn login(&mut self, config: &Config) -> anyhow::Result<Option<Ending>> {
        let mut nick = config.nick.clone();
        let mut password = config.password.as_ref().map(|p| p.text.clone());
        // The password to create `nick`'s account with, asked twice.
        let mut creating: Option<String> = None;
        loop {
            let name = match nick.clone() {
                Some(nick) => nick,
                None => match self.read("nickname: ")? {
                    Input::Line(line) if line.trim().is_empty() => continue,
                    Input::Redraw => continue,
                    Input::Line(line) => line.trim().to_string(),
                    Input::Quit => return Ok(Some(self.leave())),
                    Input::Ended => return Ok(Some(self.net.wait())),
                },
            };
            let (secret, register) = match (creating.take(), password.take()) {
                (Some(secret), _) => (secret, Some(true)),
                (None, Some(secret)) => (secret, None),
                (None, None) => match self.hidden(&format!("password for {name}: "))? {
                    Hidden::Typed(secret) => (secret, Some(false)),
                    Hidden::Empty => {
                        self.say("a password cannot be empty");
                        nick = Some(name);
                        continue;
                    }
                    Hidden::Cancelled => return Ok(Some(self.leave())),
                },
            };
            self.net.send(Command::Login {
                nick: name.clone(),
                password: secret,
                register,
            });
            match self.net.status().recv() {
                Ok(Status::LoggedIn(_)) => return Ok(None),
                Ok(Status::LoginRefused {
                    code: ErrorCode::NoSuchUser,
                    ..
                }) => match self.new_account(&name)? {
                    Choice::Password(secret) => {
                        creating = Some(secret);
                        nick = Some(name);
                    }
                    Choice::OtherNick => nick = None,
                    Choice::Leave => return Ok(Some(self.leave())),
                },
                Ok(Status::LoginRefused { code, reason }) => {
                    let (text, next) = refusal(code, &name, &reason);
                    match next {
                        Next::Password if code == ErrorCode::BadPassword => {
                            self.say(&format!("{text}; try again"));
                            nick = Some(name);
                        }
                        Next::Password => {
                            self.say(&text);
                            nick = Some(name);
                        }
                        Next::Nickname => {
                            self.say(&text);
                            nick = None;
                        }
                        Next::Stop => {
                            self.say(&text);
                            return Ok(Some(Ending::Refused));
                        }
                    }
                }
                Ok(Status::Finished(ending)) => return Ok(Some(ending)),
                Err(_) => return Ok(Some(Ending::Lost)),
            }
        }
    }

    /// `name` has no account: the password for a new one, typed twice
    /// alike; Enter alone chooses another nickname instead.
    fn new_account(&self, name: &str) -> anyhow::Result<Choice> {
        self.tell(&format!(
            "{} is a new nickname: type a password for its account twice \
             (Enter alone to choose another nickname)",
            clean(name)
        ));
        loop {
            let first = match self.hidden(&format!("new password for {name}: "))? {
                Hidden::Typed(secret) => secret,
                Hidden::Empty => return Ok(Choice::OtherNick),
                Hidden::Cancelled => return Ok(Choice::Leave),
            };
            match self.hidden("the same password again: ")? {
                Hidden::Typed(again) if again == first => return Ok(Choice::Password(first)),
                Hidden::Cancelled => return Ok(Choice::Leave),
                _ => self.say("the two passwords differ; type them again"),
            }
        }
    }

    /// `!password`: the old one, then the new one twice, all hidden.
    fn change_password(&mut self) -> anyhow::Result<()> {
        let Hidden::Typed(old) = self.hidden("current password: ")? else {
            self.say("password not changed");
            return Ok(());
        };
        let Hidden::Typed(new) = self.hidden("new password: ")? else {
            self.say("password not changed");
            return Ok(());
        };
        match self.hidden("the same password again: ")? {
            Hidden::Typed(again) if again == new => {
                self.net.send(Command::ChangePassword { old, new });
            }
            Hidden::Typed(_) => self.say("the two passwords differ; password not changed"),
            _ => self.say("password not changed"),
        }
        Ok(())
    }

    /// A hidden line from the terminal after `prompt`.
    fn hidden(&self, prompt: &str) -> anyhow::Result<Hidden> {
        match platform::read_hidden(prompt) {
            Ok(Some(secret)) if secret.is_empty() => Ok(Hidden::Empty),
            Ok(Some(secret)) => Ok(Hidden::Typed(secret)),
            Ok(None) => Ok(Hidden::Cancelled),
            Err(err) => Err(err).context(
                "cannot read the password (pass --password-file FILE or set CHAT_PASSWORD)",
            ),
        }
    }

    /// Prints a line of the client's own, `* text`.
    fn tell(&self, text: &str) {
        let notice = Notice::File {
            text: text.to_string(),
        };
        println!("{}", self.renderer.line(&notice, Local::now()));
    }

    /// Prints a refusal as an error line.
    fn say(&self, reason: &str) {
        let refused = Notice::Error {
            reason: reason.to_string(),
        };
        println!("{}", self.renderer.line(&refused, Local::now()));
    }

    /// Reads and acts on lines until the session ends.
    fn chat(&mut self) -> anyhow::Result<Ending> {
        loop {
            let (prompt, seen) = {
                let status = self.status.lock().expect("the status");
                // A redraw asked for before this prompt is drawn is done.
                self.flags.redraw.store(false, Ordering::SeqCst);
                (status.prompt(), status.unread)
            };
            let line = match self.read(&prompt)? {
                Input::Line(line) => line,
                Input::Redraw => continue,
                Input::Quit => return Ok(self.leave()),
                Input::Ended => return Ok(self.net.wait()),
            };
            self.status.lock().expect("the status").typed(seen);
            // A block pasted (bracketed paste: it arrives as one line with
            // line ends in it) is handled line by line, as if typed; a big
            // one only if confirmed. It stays on the screen as pasted.
            let lines = pasted(&line);
            if lines.len() > 1 {
                if lines.len() > PASTE_ASK && !self.confirm_paste(lines.len())? {
                    continue;
                }
                for one in lines {
                    let _ = self.editor.add_history_entry(one);
                    if let Some(ending) = self.act(command::parse(one))? {
                        return Ok(ending);
                    }
                }
                continue;
            }
            if !line.trim().is_empty() {
                let _ = self.editor.add_history_entry(line.as_str());
            }
            let parsed = command::parse(&line);
            if shown_again(&parsed) {
                self.erase(&prompt, &line);
            }
            if let Some(ending) = self.act(parsed)? {
                return Ok(ending);
            }
        }
    }

    /// Does what a line says; the ending if it leaves.
    fn act(&mut self, parsed: Line) -> anyhow::Result<Option<Ending>> {
        match parsed {
            Line::Command(Command::Leave) => return Ok(Some(self.leave())),
            Line::Local(Typed::ChangePassword) => self.change_password()?,
            Line::Command(command) => self.net.send(command),
            Line::Local(local) => {
                if let Some(text) = local.text() {
                    println!("{text}");
                }
            }
        }
        Ok(None)
    }

    /// `send 12 lines? [y/N]`: whether a big paste goes out.
    fn confirm_paste(&mut self, count: usize) -> anyhow::Result<bool> {
        loop {
            return match self.read(&format!("send {count} lines? [y/N] "))? {
                Input::Line(answer) if matches!(answer.trim(), "y" | "Y" | "yes") => Ok(true),
                Input::Redraw => continue,
                _ => {
                    self.tell(&format!("{count} pasted lines not sent"));
                    Ok(false)
                }
            };
        }
    }

    /// Takes the line just typed off the screen, as irssi does: the client
    /// shows it again as sent (`<bob (you)> …`, `[private to …] …`), and
    /// twice is noise. Not if something may have been printed below it.
    fn erase(&self, prompt: &str, line: &str) {
        let Some(columns) = platform::columns() else {
            return;
        };
        // A pasted line end makes rows of its own: left as it is.
        if line.contains('\n') {
            return;
        }
        let printer = self.printer.lock().expect("the printer");
        if printer.direct {
            return;
        }
        let rows = rows_taken(prompt, line, columns);
        let mut out = io::stdout().lock();
        // Up to the prompt's first row, then clear to the end of the screen.
        let _ = write!(out, "\x1b[{rows}A\r\x1b[J");
        let _ = out.flush();
        drop(printer);
    }

    /// Says bye once the outbox is empty and waits for the end, but not
    /// forever: a person who asked to leave should not be held by a server
    /// that stopped answering, or is not there. What was never stored is
    /// listed as the client goes.
    fn leave(&mut self) -> Ending {
        self.flags.waiting.store(true, Ordering::SeqCst);
        self.net.send(Command::Leave);
        self.net.wait_for(LEAVE_PATIENCE).unwrap_or_else(|| {
            println!("the server did not answer in time; leaving anyway");
            self.net.send(Command::Abandon);
            self.net.wait_for(Duration::from_secs(1));
            Ending::Left
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_taken_by_a_typed_line() {
        assert_eq!(rows_taken(">> ", "hello", 80), 1);
        assert_eq!(rows_taken(">> ", &"x".repeat(76), 80), 1);
        // Filling the row exactly: rustyline starts a new one.
        assert_eq!(rows_taken(">> ", &"x".repeat(77), 80), 2);
        assert_eq!(rows_taken(">> ", &"x".repeat(200), 80), 3);
        // Wide characters take two columns each.
        assert_eq!(rows_taken(">> ", &"字".repeat(40), 80), 2);
    }

    #[test]
    fn a_paste_is_its_lines() {
        assert_eq!(pasted("one"), ["one"]);
        assert_eq!(pasted("one\ntwo\n\n  \nthree\n"), ["one", "two", "three"]);
        assert!(pasted("").is_empty());
    }

    #[test]
    fn only_messages_are_shown_again() {
        assert!(shown_again(&command::parse("hello")));
        assert!(shown_again(&command::parse("!private bob hi")));
        assert!(shown_again(&command::parse("#class hi")));
        assert!(shown_again(&command::parse("/me waves")));
        assert!(!shown_again(&command::parse("!online")));
        assert!(!shown_again(&command::parse("!private bob")));
        assert!(!shown_again(&command::parse("!bye")));
    }
}
