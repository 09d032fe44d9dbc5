//! Drawing what covers a screen: the key help, the ID's QR code and the dialogs.
//!
//! Like the screens, these only read the state. A dialog's live checks (is the pasted ID
//! valid, and why not) are computed here from what was typed, so they follow every key.

use super::app::{
    AddDevice, AddFolder, App, Choice, DeviceField, Dialog, FolderField, Input, MODES, Overlay,
};
use super::keys::{self, BINDINGS, Scope};
use super::render::{bad, block, bold, dim, good, selected};
use super::text;
use crate::identity::DeviceId;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn render(app: &App, overlay: &Overlay, frame: &mut Frame, area: Rect) {
    match overlay {
        Overlay::Help { scroll } => help(*scroll, frame, area),
        Overlay::Qr => qr(app, frame, area),
        Overlay::Dialog(d) => dialog(app, d, frame, area),
    }
}

/// A box of at most `width`×`height` in the middle of `area`, cleared.
fn popup(frame: &mut Frame, area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, r);
    r
}

// Help.

/// The help's lines: every scope's bindings, from the one table.
pub fn help_lines() -> Vec<Line<'static>> {
    let scopes = [
        Scope::Global,
        Scope::Screen(super::app::Screen::Overview),
        Scope::Screen(super::app::Screen::Folders),
        Scope::Screen(super::app::Screen::Devices),
        Scope::Screen(super::app::Screen::Pending),
        Scope::Screen(super::app::Screen::Events),
        Scope::Dialog,
        Scope::Overlay,
    ];
    let mut lines = Vec::new();
    for s in scopes {
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(text::scope_title(s), bold().fg(Color::Cyan)));
        for b in BINDINGS.iter().filter(|b| b.scope == s) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<18}", keys::key_names(b.keys, 4)), bold()),
                Span::raw(b.help),
            ]));
        }
    }
    lines
}

fn help(scroll: u16, frame: &mut Frame, area: Rect) {
    let lines = help_lines();
    let r = popup(frame, area, 72, area.height.saturating_sub(2));
    let outer = block(text::DLG_HELP.trim())
        .title_bottom(Span::styled(format!(" {} ", text::HELP_FOOTER), dim()));
    let visible = outer.inner(r).height;
    let max = (lines.len() as u16).saturating_sub(visible);
    frame.render_widget(
        Paragraph::new(lines)
            .block(outer)
            .scroll((scroll.min(max), 0)),
        r,
    );
}

// QR code.

/// The ID as QR code text (two modules per character cell), or `None` if it cannot be
/// encoded. Level L: a screen is not a torn sticker, and the smaller code fits 80×24.
pub fn qr_text(id: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(id, qrcode::EcLevel::L).ok()?;
    Some(code.render::<Dense1x2>().quiet_zone(true).build())
}

fn qr(app: &App, frame: &mut Frame, area: Rect) {
    let id = app.device_id().to_string();
    let code = qr_text(&id);
    let (w, h) = code
        .as_ref()
        .map(|c| {
            (
                c.lines().map(|l| l.chars().count()).max().unwrap_or(0) as u16,
                c.lines().count() as u16,
            )
        })
        .unwrap_or((0, 0));
    let fits = code.is_some() && w + 2 <= area.width && h + 3 <= area.height;
    let width = if fits {
        w.saturating_add(2).max(
            u16::try_from(id.len())
                .unwrap_or(u16::MAX)
                .saturating_add(4),
        )
    } else {
        70
    };
    let height = if fits { h + 3 } else { 7 };
    let r = popup(frame, area, width, height);
    let outer = block(text::DLG_QR.trim());
    let inner = outer.inner(r);
    frame.render_widget(outer, r);
    let [code_area, id_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    match code {
        Some(c) if fits => {
            // Dark modules on a light ground whatever the terminal's colours.
            let qr_area = Rect {
                x: code_area.x + (code_area.width.saturating_sub(w)) / 2,
                width: w.min(code_area.width),
                ..code_area
            };
            frame.render_widget(
                Paragraph::new(c).style(Style::new().fg(Color::Black).bg(Color::White)),
                qr_area,
            );
        }
        Some(_) => frame.render_widget(
            Paragraph::new(text::QR_TOO_SMALL).wrap(Wrap { trim: true }),
            code_area,
        ),
        None => frame.render_widget(Paragraph::new(text::QR_FAILED), code_area),
    }
    frame.render_widget(Paragraph::new(Span::styled(id, bold())).centered(), id_area);
}

// Dialogs.

/// Draws a label and a one-line input under it; the focused one gets the cursor.
fn input(frame: &mut Frame, area: Rect, label: &str, value: &Input, focused: bool) {
    let [l, v] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let marker = if focused { "▸ " } else { "  " };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(marker, bold().fg(Color::Cyan)),
            Span::styled(label.to_string(), if focused { bold() } else { dim() }),
        ])),
        l,
    );
    let room = v.width.saturating_sub(3) as usize;
    let chars: Vec<char> = value.value.chars().collect();
    // A value longer than the box shows its end, where the cursor is.
    let shown: String = chars[chars.len().saturating_sub(room)..].iter().collect();
    let field = Rect {
        x: v.x + 2,
        width: v.width.saturating_sub(2),
        ..v
    };
    let style = if focused {
        Style::new().bg(Color::Blue).fg(Color::White)
    } else {
        Style::new().bg(Color::DarkGray)
    };
    frame.render_widget(Paragraph::new(shown.clone()).style(style), field);
    if focused {
        let x = field.x + (shown.chars().count() as u16).min(field.width.saturating_sub(1));
        frame.set_cursor_position((x, field.y));
    }
}

fn keys_line(s: &str) -> Paragraph<'_> {
    Paragraph::new(Span::styled(s, dim()))
}

fn error_line(e: &Option<String>) -> Paragraph<'static> {
    Paragraph::new(Span::styled(e.clone().unwrap_or_default(), bad())).wrap(Wrap { trim: true })
}

fn dialog(app: &App, d: &Dialog, frame: &mut Frame, area: Rect) {
    match d {
        Dialog::AddDevice(a) => add_device(a, frame, area),
        Dialog::AddFolder(f) => add_folder(f, frame, area),
        Dialog::RenameDevice { input: value, .. } => {
            let r = popup(frame, area, 60, 6);
            let outer = block(text::DLG_RENAME.trim());
            let inner = outer.inner(r);
            frame.render_widget(outer, r);
            let [f, _, k] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Length(1),
                Constraint::Length(1),
            ])
            .areas(inner);
            input(frame, f, text::FIELD_NEW_NAME, value, true);
            frame.render_widget(keys_line(text::FIELD_KEYS), k);
        }
        Dialog::Share {
            label,
            choices,
            cursor,
            ..
        } => {
            let r = popup(
                frame,
                area,
                60,
                u16::try_from(choices.len())
                    .unwrap_or(u16::MAX)
                    .saturating_add(5),
            );
            let outer = block(text::share_title(label).trim());
            let inner = outer.inner(r);
            frame.render_widget(outer, r);
            let [p, list, k] = Layout::vertical([
                Constraint::Length(1),
                Constraint::Min(0),
                Constraint::Length(1),
            ])
            .areas(inner);
            frame.render_widget(Paragraph::new(text::SHARE_PROMPT), p);
            let lines: Vec<Line> = choices
                .iter()
                .enumerate()
                .map(|(i, c)| choice_line(c, i == *cursor, true, false))
                .collect();
            frame.render_widget(Paragraph::new(lines), list);
            frame.render_widget(keys_line(text::LIST_KEYS), k);
        }
        Dialog::Mode { label, cursor, .. } => {
            let r = popup(frame, area, 78, MODES.len() as u16 + 4);
            let outer = block(text::mode_title(label).trim());
            let inner = outer.inner(r);
            frame.render_widget(outer, r);
            let [list, k] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
            let lines: Vec<Line> = MODES
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let l = Line::from(vec![
                        Span::raw(if i == *cursor { "▶ " } else { "  " }),
                        Span::styled(format!("{m:<14}"), bold()),
                        Span::raw(text::mode_help(m)),
                    ]);
                    if i == *cursor { l.style(selected()) } else { l }
                })
                .collect();
            frame.render_widget(Paragraph::new(lines), list);
            frame.render_widget(keys_line(text::LIST_KEYS), k);
        }
        Dialog::AcceptFolder {
            folder,
            label,
            path,
            error,
        } => {
            let by = app
                .pending
                .folders
                .iter()
                .find(|f| f.id == *folder)
                .map(|f| {
                    f.offered_by
                        .iter()
                        .map(|d| app.device_name(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let r = popup(frame, area, 70, 9);
            let outer = block(text::DLG_ACCEPT_FOLDER.trim());
            let inner = outer.inner(r);
            frame.render_widget(outer, r);
            let [intro, f, e, k] = Layout::vertical([
                Constraint::Length(1),
                Constraint::Length(2),
                Constraint::Min(1),
                Constraint::Length(1),
            ])
            .areas(inner);
            frame.render_widget(
                Paragraph::new(text::accept_folder_intro(label, folder, &by)),
                intro,
            );
            input(frame, f, text::FIELD_ACCEPT_PATH, path, true);
            frame.render_widget(error_line(error), e);
            frame.render_widget(keys_line(text::FIELD_KEYS), k);
        }
        Dialog::Confirm { question, .. } => {
            let r = popup(frame, area, 64, 7);
            let outer = block(text::DLG_CONFIRM.trim());
            let inner = outer.inner(r);
            frame.render_widget(outer, r);
            frame.render_widget(
                Paragraph::new(question.as_str()).wrap(Wrap { trim: true }),
                inner,
            );
        }
    }
}

/// What the ID field holds, checked as it is typed.
fn id_check(value: &str) -> Line<'static> {
    if value.trim().is_empty() {
        return Line::styled(text::ID_EMPTY, dim());
    }
    match value.parse::<DeviceId>() {
        Ok(id) => Line::styled(text::id_ok(&id.short_str()), good()),
        Err(e) => Line::styled(text::id_bad(&e.to_string()), bad()),
    }
}

fn add_device(a: &AddDevice, frame: &mut Frame, area: Rect) {
    let r = popup(frame, area, 76, 15);
    let outer = block(text::DLG_ADD_DEVICE.trim());
    let inner = outer.inner(r);
    frame.render_widget(outer, r);
    let [id, check, name, addr, err, k] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(inner);
    input(
        frame,
        id,
        text::FIELD_DEVICE_ID,
        &a.id,
        a.focus == DeviceField::Id,
    );
    let check_area = Rect {
        x: check.x + 2,
        width: check.width.saturating_sub(2),
        ..check
    };
    frame.render_widget(
        Paragraph::new(id_check(&a.id.value)).wrap(Wrap { trim: true }),
        check_area,
    );
    input(
        frame,
        name,
        text::FIELD_NAME,
        &a.name,
        a.focus == DeviceField::Name,
    );
    input(
        frame,
        addr,
        text::FIELD_ADDRESS,
        &a.address,
        a.focus == DeviceField::Address,
    );
    // The ID's own check already says what is wrong with it.
    let other_error = a.error.clone().filter(|e| !e.starts_with('✗'));
    frame.render_widget(error_line(&other_error), err);
    frame.render_widget(keys_line(text::DIALOG_KEYS), k);
}

fn choice_line(c: &Choice, at_cursor: bool, focused: bool, tick: bool) -> Line<'static> {
    let mark = if tick {
        if c.ticked { "[x] " } else { "[ ] " }
    } else {
        ""
    };
    let l = Line::from(vec![
        Span::raw(if at_cursor && focused { "▶ " } else { "  " }),
        Span::raw(mark),
        Span::styled(c.name.clone(), bold()),
        Span::styled(format!("  {}", super::app::short(&c.id)), dim()),
    ]);
    if at_cursor && focused {
        l.style(selected())
    } else {
        l
    }
}

fn add_folder(f: &AddFolder, frame: &mut Frame, area: Rect) {
    let list_height = (f.share.len().max(1) as u16).min(5);
    let r = popup(frame, area, 76, 12 + list_height);
    let outer = block(text::DLG_ADD_FOLDER.trim());
    let inner = outer.inner(r);
    frame.render_widget(outer, r);
    let [path, label, mode, share_label, share, err, k] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(list_height),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(inner);
    input(
        frame,
        path,
        text::FIELD_PATH,
        &f.path,
        f.focus == FolderField::Path,
    );
    input(
        frame,
        label,
        text::FIELD_LABEL,
        &f.label,
        f.focus == FolderField::Label,
    );
    let mode_focused = f.focus == FolderField::Mode;
    let [ml, mv] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(mode);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                if mode_focused { "▸ " } else { "  " },
                bold().fg(Color::Cyan),
            ),
            Span::styled(text::FIELD_MODE, if mode_focused { bold() } else { dim() }),
        ])),
        ml,
    );
    let m = MODES[f.mode % MODES.len()];
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("◀ {m} ▶"),
                if mode_focused { selected() } else { bold() },
            ),
            Span::styled(format!("  {}", text::mode_help(m)), dim()),
        ])),
        mv,
    );
    let share_focused = f.focus == FolderField::Share;
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                if share_focused { "▸ " } else { "  " },
                bold().fg(Color::Cyan),
            ),
            Span::styled(
                text::FIELD_SHARE,
                if share_focused { bold() } else { dim() },
            ),
        ])),
        share_label,
    );
    let lines: Vec<Line> = if f.share.is_empty() {
        vec![Line::styled(
            format!("    {}", text::NO_TRUSTED_DEVICES),
            dim(),
        )]
    } else {
        // Keep the cursor in view when there are more devices than lines.
        let skip = f.cursor.saturating_sub(list_height as usize - 1);
        f.share
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, c)| {
                let mut l = choice_line(c, i == f.cursor, share_focused, true);
                l.spans.insert(0, Span::raw("  "));
                l
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), share);
    frame.render_widget(error_line(&f.error), err);
    frame.render_widget(keys_line(text::DIALOG_KEYS), k);
}
