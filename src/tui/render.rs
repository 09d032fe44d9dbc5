//! Drawing the screens: header, tabs, the current screen, footer, then any overlay.
//!
//! Render functions only read the [`App`]; they never change state or talk to the
//! service, so a frame is a pure function of the state and the terminal's size.

use super::app::{App, Conflicts, LinkState, PendingItem, Screen, ServiceKind, short};
use super::keys::{self, Scope};
use super::overlays;
use super::text;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, LineGauge, Padding, Paragraph, Row, Sparkline, Table, TableState, Tabs,
    Wrap,
};

/// Below this width the layouts stack and drop columns.
pub const WIDE: u16 = 80;
/// With a body shorter than this the overview drops its frames (80×24 keeps them).
const COMPACT_BELOW: u16 = 18;
/// Below this size only a request to enlarge the terminal is shown.
const MIN_WIDTH: u16 = 40;
const MIN_HEIGHT: u16 = 10;

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        frame.render_widget(
            Paragraph::new(text::TOO_SMALL).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let footer_height = if app.notice.is_some() || app.in_flight > 0 {
        2
    } else {
        1
    };
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(footer_height),
    ])
    .areas(area);
    render_header(app, frame, header);
    render_tabs(app, frame, tabs);
    match app.screen {
        Screen::Overview => overview(app, frame, body),
        Screen::Folders => folders(app, frame, body),
        Screen::Devices => devices(app, frame, body),
        Screen::Pending => pending(app, frame, body),
        Screen::Events => events(app, frame, body),
    }
    render_footer(app, frame, footer);
    if let Some(o) = &app.overlay {
        overlays::render(app, o, frame, area);
    }
}

// Styles, in one place.
pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}
pub fn good() -> Style {
    Style::new().fg(Color::Green)
}
pub fn warn() -> Style {
    Style::new().fg(Color::Yellow)
}
pub fn bad() -> Style {
    Style::new().fg(Color::Red)
}
pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}
fn title_style() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

pub fn block(title: &str) -> Block<'static> {
    Block::bordered()
        .title(Span::styled(format!(" {title} "), title_style()))
        .border_style(dim())
        .padding(Padding::horizontal(1))
}

fn state_style(state: &str) -> Style {
    match state {
        "idle" => good(),
        "syncing" | "scanning" => Style::new().fg(Color::Cyan),
        "error" => bad().add_modifier(Modifier::BOLD),
        "paused" => warn(),
        _ => Style::new(),
    }
}

/// `part` of `whole` in percent, without overflow, at most 100.
fn per_cent(part: u64, whole: u64) -> u64 {
    (u128::from(part) * 100 / u128::from(whole.max(1))).min(100) as u64
}

/// A folder's progress in percent: a sync's bytes held against needed, or a scan's hashed.
fn percent(app: &App, f: &super::app::FolderStatus) -> Option<u64> {
    match f.state.as_str() {
        "syncing" if f.need_bytes > 0 => Some(per_cent(
            f.local_bytes,
            f.local_bytes.saturating_add(f.need_bytes),
        )),
        "scanning" => app
            .scans
            .get(&f.id)
            .filter(|(_, total)| *total > 0)
            .map(|(done, total)| per_cent(*done, *total)),
        _ => None,
    }
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let wide = area.width >= 100;
    let mode = match &app.service {
        ServiceKind::Embedded if wide => text::EMBEDDED.to_string(),
        ServiceKind::Embedded => text::EMBEDDED_SHORT.to_string(),
        ServiceKind::Attached { pid } if wide => text::attached(*pid),
        ServiceKind::Attached { .. } => text::ATTACHED_SHORT.to_string(),
    };
    let name = if app.status.name.is_empty() {
        String::new()
    } else {
        format!(" {} ", app.status.name)
    };
    let left = Line::from(vec![
        Span::styled(
            format!(" {} ", text::APP),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ),
        Span::styled(name, bold()),
        Span::styled(format!(" {} ", app.short_id()), title_style()),
        Span::styled(format!("· {mode}"), dim()),
    ]);
    let (link, style) = match &app.link {
        LinkState::Connecting => (text::CONNECTING, dim()),
        LinkState::Up => (text::LINK_UP, good()),
        LinkState::Down(_) => (text::LINK_DOWN, bad()),
    };
    let right_width = link.chars().count() as u16 + 1;
    let [l, r] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_width)]).areas(area);
    frame.render_widget(Paragraph::new(left), l);
    frame.render_widget(
        Paragraph::new(Span::styled(link, style)).alignment(Alignment::Right),
        r,
    );
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let titles: Vec<String> = Screen::ALL
        .iter()
        .map(|s| text::tab_title(*s, app.pending_count()))
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.screen.index())
        .style(dim())
        .highlight_style(
            Style::new()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
        )
        .divider("│");
    let tabs = if area.width < 64 {
        tabs.padding("", "")
    } else {
        tabs.padding(" ", " ")
    };
    frame.render_widget(tabs, area);
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect) {
    let mut rows = area.rows();
    if app.notice.is_some() || app.in_flight > 0 {
        let Some(first) = rows.next() else { return };
        let line = match &app.notice {
            Some(n) => Span::styled(format!(" {}", n.text), if n.error { bad() } else { good() }),
            None => Span::styled(format!(" {}", text::working(app.in_flight)), warn()),
        };
        frame.render_widget(Paragraph::new(line), first);
    }
    let Some(hints_area) = rows.next() else {
        return;
    };
    let scope = match &app.overlay {
        Some(super::app::Overlay::Dialog(_)) => Scope::Dialog,
        Some(_) => Scope::Overlay,
        None => Scope::Screen(app.screen),
    };
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (k, word) in keys::hints(scope) {
        let word = format!(" {word}  ");
        used += k.chars().count() + word.chars().count();
        // Hints that do not fit are left out whole, not cut in the middle.
        if used > hints_area.width as usize + 2 {
            break;
        }
        spans.push(Span::styled(k, bold()));
        spans.push(Span::styled(word, dim()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), hints_area);
}

/// A number of rows as a height, saturated (a screen is never that tall anyway).
fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// A field's name padded so the values after it line up.
fn label(name: &str) -> String {
    format!("{name:<11}")
}

/// "Label   value" lines with the labels padded to one width.
fn field_line<'a>(name: &str, value: impl Into<Span<'a>>) -> Line<'a> {
    Line::from(vec![Span::styled(label(name), dim()), value.into()])
}

fn loading_or<'a>(app: &App, empty: &'a str) -> Paragraph<'a> {
    Paragraph::new(if app.loaded { empty } else { text::LOADING })
        .style(dim())
        .wrap(Wrap { trim: true })
}

// Overview.

fn overview(app: &App, frame: &mut Frame, area: Rect) {
    // Below 80 columns, or with too few rows for boxes, the overview drops its frames.
    if area.width < WIDE || area.height < COMPACT_BELOW {
        return overview_compact(app, frame, area);
    }
    let [me, rest] = Layout::vertical([Constraint::Length(6), Constraint::Min(0)]).areas(area);
    this_device(app, frame, me);
    // The tables get what they need; what is left shows the newest events.
    let rows = count(app.status.folders.len().max(app.status.devices.len()));
    let mut tables = rows.saturating_add(3).max(5).min(rest.height);
    if rest.height - tables < 4 {
        tables = rest.height;
    }
    let [top, log] = Layout::vertical([Constraint::Length(tables), Constraint::Min(0)]).areas(rest);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    folder_summary(app, frame, left, block);
    device_summary(app, frame, right, block);
    if log.height > 0 {
        let outer = block(text::EVENTS);
        let height = outer.inner(log).height as usize;
        let lines = if app.log.is_empty() {
            vec![Line::styled(text::NO_EVENTS, dim())]
        } else {
            log_lines(app, height, outer.inner(log).width, 0)
        };
        frame.render_widget(Paragraph::new(lines).block(outer), log);
    }
}

/// A section title over the full width, without side borders: for small terminals.
fn section(title: &str) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(format!(" {title} "), title_style()))
        .border_style(dim())
}

/// Below 80 columns: no side borders, one section under the other.
fn overview_compact(app: &App, frame: &mut Frame, area: Rect) {
    let [me, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
    let (rx, tx) = app.total_rates();
    let listen = if app.status.listen_addresses.is_empty() {
        text::NOT_LISTENING.to_string()
    } else {
        app.status.listen_addresses.join(", ")
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(app.status.name.clone(), bold()),
            Span::raw("  "),
            Span::styled(app.short_id().to_string(), title_style()),
            Span::styled(format!("  {}", text::QR_HINT), dim()),
        ]),
        Line::from(vec![
            Span::raw(listen),
            Span::styled(format!("  {} ", text::UPTIME), dim()),
            Span::raw(text::uptime(app.status.uptime_secs)),
            Span::raw(format!("  {}", text::rates(rx, tx))),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines).block(section(text::THIS_DEVICE)), me);
    // Folders first; devices keep at least what they need when there is room for both.
    let nf = count(app.status.folders.len().max(1)).saturating_add(1);
    let nd = count(app.status.devices.len().max(1)).saturating_add(1);
    let folders_height = nf.min(rest.height.saturating_sub(nd).max(rest.height / 2));
    let [top, bottom] =
        Layout::vertical([Constraint::Length(folders_height), Constraint::Min(0)]).areas(rest);
    folder_summary(app, frame, top, section);
    device_summary(app, frame, bottom, section);
}

fn this_device(app: &App, frame: &mut Frame, area: Rect) {
    let listen = if app.status.listen_addresses.is_empty() {
        text::NOT_LISTENING.to_string()
    } else {
        app.status.listen_addresses.join(", ")
    };
    let (rx, tx) = app.total_rates();
    let lines = vec![
        field_line(text::NAME, Span::styled(app.status.name.clone(), bold())),
        field_line(
            text::ID,
            Span::styled(app.device_id().to_string(), title_style()),
        ),
        field_line(text::LISTEN, listen),
        Line::from(vec![
            Span::styled(label(text::UPTIME), dim()),
            Span::raw(format!("{:<12}", text::uptime(app.status.uptime_secs))),
            Span::styled(format!("{}  ", text::RATES), dim()),
            Span::raw(text::rates(rx, tx)),
        ]),
    ];
    let title = format!("{} {}", text::THIS_DEVICE, text::QR_HINT);
    frame.render_widget(Paragraph::new(lines).block(block(&title)), area);
}

/// Rows that fit in `height` once the frame and header take theirs, with the last one
/// saying how many more there are when not all fit.
fn fit<T>(items: &[T], height: u16, overhead: u16) -> (usize, Option<usize>) {
    let room = height.saturating_sub(overhead) as usize;
    if items.len() <= room {
        (items.len(), None)
    } else {
        let shown = room.saturating_sub(1);
        (shown, Some(items.len() - shown))
    }
}

fn more_row(n: Option<usize>) -> Option<Row<'static>> {
    n.map(|n| Row::new(vec![Cell::from(Span::styled(text::more(n), dim()))]))
}

/// Rows a frame made by `frame` takes from a table's height (with a header row when
/// the frame has side borders).
fn overhead(frame: fn(&str) -> Block<'static>, area: Rect) -> (u16, bool) {
    let inner = frame("").inner(area);
    let boxed = inner.width + 2 <= area.width;
    let used = area.height - inner.height;
    if boxed {
        (used + 1, true)
    } else {
        (used, false)
    }
}

fn folder_summary(app: &App, frame: &mut Frame, area: Rect, outer: fn(&str) -> Block<'static>) {
    let title = format!("{} ({})", text::FOLDERS, app.status.folders.len());
    if app.status.folders.is_empty() {
        frame.render_widget(loading_or(app, text::NO_FOLDERS).block(outer(&title)), area);
        return;
    }
    let (used, header) = overhead(outer, area);
    let (shown, more) = fit(&app.status.folders, area.height, used);
    let rows = app.status.folders[..shown]
        .iter()
        .map(|f| {
            Row::new(vec![
                Cell::from(app.folder_label(&f.id)),
                Cell::from(Span::styled(
                    text::state_cell(&f.state, percent(app, f)),
                    state_style(&f.state),
                )),
                Cell::from(text::size(f.local_bytes)),
            ])
        })
        .chain(more_row(more));
    let mut table = Table::new(
        rows,
        [
            Constraint::Min(8),
            Constraint::Length(12),
            Constraint::Length(8),
        ],
    )
    .block(outer(&title));
    if header {
        table = table
            .header(Row::new(vec![text::COL_LABEL, text::COL_STATE, text::COL_SIZE]).style(dim()));
    }
    frame.render_widget(table, area);
}

fn connection_cell(app: &App, d: &super::app::DeviceStatus, wide: bool) -> Span<'static> {
    if d.paused {
        Span::styled(text::PAUSED, warn())
    } else if d.connected {
        Span::styled(text::CONNECTED, good())
    } else if wide {
        Span::styled(text::last_seen(app.last_seen.get(&d.id).copied()), dim())
    } else {
        Span::styled(text::OFFLINE, dim())
    }
}

fn device_summary(app: &App, frame: &mut Frame, area: Rect, outer: fn(&str) -> Block<'static>) {
    let title = format!("{} ({})", text::DEVICES, app.status.devices.len());
    if app.status.devices.is_empty() {
        frame.render_widget(loading_or(app, text::NO_DEVICES).block(outer(&title)), area);
        return;
    }
    let (used, header) = overhead(outer, area);
    let (shown, more) = fit(&app.status.devices, area.height, used);
    let rows = app.status.devices[..shown]
        .iter()
        .map(|d| {
            Row::new(vec![
                Cell::from(d.name.clone()),
                Cell::from(connection_cell(app, d, false)),
                Cell::from(Span::styled(short(&d.id).to_string(), dim())),
            ])
        })
        .chain(more_row(more));
    let mut table = Table::new(
        rows,
        [
            Constraint::Min(8),
            Constraint::Length(10),
            Constraint::Length(7),
        ],
    )
    .block(outer(&title));
    if header {
        table = table
            .header(Row::new(vec![text::COL_DEVICE, text::COL_CONN, text::COL_ID]).style(dim()));
    }
    frame.render_widget(table, area);
}

// Folders.

/// Height of a list above its detail: all rows when they fit in half the screen (a third
/// on a short terminal, so the detail keeps room for an error in full).
fn list_height(rows: usize, height: u16) -> u16 {
    let share = if height < 21 { height / 3 } else { height / 2 };
    count(rows).saturating_add(3).min(share).max(4)
}

fn folders(app: &App, frame: &mut Frame, area: Rect) {
    let title = format!("{} ({})", text::FOLDERS, app.status.folders.len());
    if app.status.folders.is_empty() {
        frame.render_widget(
            loading_or(app, text::NO_FOLDERS_HERE).block(block(&title)),
            area,
        );
        return;
    }
    let wide = area.width >= WIDE;
    let table_height = list_height(app.status.folders.len(), area.height);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Min(0)]).areas(area);
    let shared = |id: &str| -> String {
        app.folder_conf(id)
            .map(|c| {
                c.devices
                    .iter()
                    .map(|d| app.device_name(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let rows: Vec<Row> = app
        .status
        .folders
        .iter()
        .map(|f| {
            let state = Cell::from(Span::styled(
                text::state_cell(&f.state, percent(app, f)),
                state_style(&f.state),
            ));
            if wide {
                Row::new(vec![
                    Cell::from(app.folder_label(&f.id)),
                    state,
                    Cell::from(f.mode.clone()),
                    Cell::from(f.local_files.to_string()),
                    Cell::from(text::size(f.local_bytes)),
                    Cell::from(shared(&f.id)),
                ])
            } else {
                Row::new(vec![
                    Cell::from(app.folder_label(&f.id)),
                    state,
                    Cell::from(text::size(f.local_bytes)),
                ])
            }
        })
        .collect();
    let (widths, header): (Vec<Constraint>, Vec<&str>) = if wide {
        (
            vec![
                Constraint::Min(10),
                Constraint::Length(12),
                Constraint::Length(12),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Min(10),
            ],
            vec![
                text::COL_LABEL,
                text::COL_STATE,
                text::COL_MODE,
                text::COL_FILES,
                text::COL_SIZE,
                text::COL_SHARED,
            ],
        )
    } else {
        (
            vec![
                Constraint::Min(8),
                Constraint::Length(12),
                Constraint::Length(8),
            ],
            vec![text::COL_LABEL, text::COL_STATE, text::COL_SIZE],
        )
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(dim()))
        .block(block(&title))
        .row_highlight_style(selected())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.sel_folder));
    frame.render_stateful_widget(table, top, &mut state);
    if let Some(f) = app.selected_folder() {
        folder_detail(app, f, &shared(&f.id), frame, bottom);
    }
}

fn folder_detail(
    app: &App,
    f: &super::app::FolderStatus,
    shared: &str,
    frame: &mut Frame,
    area: Rect,
) {
    let outer = block(&app.folder_label(&f.id));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let info = vec![
        field_line(text::PATH, format!("{}  ({})", f.path, f.id)),
        Line::from(vec![
            Span::styled(label(text::MODE), dim()),
            Span::raw(format!("{:<16}", f.mode)),
            Span::styled(format!("{}  ", text::STATE), dim()),
            Span::styled(f.state.clone(), state_style(&f.state)),
        ]),
        field_line(
            text::SHARED_WITH,
            if shared.is_empty() {
                Span::styled(text::NOT_SHARED, dim())
            } else {
                Span::raw(shared.to_string())
            },
        ),
        Line::from(vec![
            Span::styled(label(text::LOCAL), dim()),
            Span::raw(format!(
                "{:<24}",
                text::files_bytes(f.local_files, f.local_bytes)
            )),
            Span::styled(format!("{}  ", text::NEEDS), dim()),
            Span::raw(text::files_bytes(f.need_files, f.need_bytes)),
        ]),
    ];
    let gauge = match (f.state.as_str(), app.scans.get(&f.id)) {
        ("scanning", Some((done, total))) if *total > 0 => Some((
            *done as f64 / *total as f64,
            text::scanning_gauge(*done, *total),
        )),
        (_, _) if f.need_bytes > 0 || f.state == "syncing" => {
            let total = f.local_bytes.saturating_add(f.need_bytes);
            Some((
                f.local_bytes as f64 / total.max(1) as f64,
                text::syncing_gauge(f.local_bytes, total, f.need_files),
            ))
        }
        _ => None,
    };
    let [info_area, gauge_area, rest] = Layout::vertical([
        Constraint::Length(info.len() as u16),
        Constraint::Length(if gauge.is_some() { 1 } else { 0 }),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(info), info_area);
    if let Some((ratio, label)) = gauge {
        frame.render_widget(
            LineGauge::default()
                .ratio(ratio.clamp(0.0, 1.0))
                .label(label)
                .filled_symbol(ratatui::symbols::line::THICK_HORIZONTAL)
                .filled_style(Style::new().fg(Color::Cyan))
                .unfilled_style(dim()),
            gauge_area,
        );
    }
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = &f.error {
        lines.push(Line::from(vec![
            Span::styled(label(text::ERROR), bad().add_modifier(Modifier::BOLD)),
            Span::styled(e.clone(), bad()),
        ]));
    }
    lines.push(Line::styled(
        text::RECENT,
        dim().add_modifier(Modifier::BOLD),
    ));
    match app.changes.get(&f.id) {
        Some(list) if !list.is_empty() => {
            for c in list {
                lines.push(Line::from(vec![
                    Span::styled(format!("{}  ", text::clock(c.time)), dim()),
                    Span::styled(
                        text::change_line(&c.name, &app.device_name(&c.device), c.deleted),
                        if c.deleted { warn() } else { Style::new() },
                    ),
                ]));
            }
        }
        _ => lines.push(Line::styled(text::NO_RECENT, dim())),
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), rest);
}

// Devices.

fn devices(app: &App, frame: &mut Frame, area: Rect) {
    let title = format!("{} ({})", text::DEVICES, app.status.devices.len());
    if app.status.devices.is_empty() {
        frame.render_widget(loading_or(app, text::NO_DEVICES).block(block(&title)), area);
        return;
    }
    let wide = area.width >= WIDE;
    let table_height = list_height(app.status.devices.len(), area.height);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Min(0)]).areas(area);
    let rows: Vec<Row> = app
        .status
        .devices
        .iter()
        .map(|d| {
            let t = app.traffic.get(&d.id);
            let rin = text::rate(t.map(|t| t.in_rate).unwrap_or(0));
            let rout = text::rate(t.map(|t| t.out_rate).unwrap_or(0));
            if wide {
                Row::new(vec![
                    Cell::from(d.name.clone()),
                    Cell::from(Span::styled(short(&d.id).to_string(), dim())),
                    Cell::from(connection_cell(app, d, true)),
                    Cell::from(d.address.clone().unwrap_or_default()),
                    Cell::from(rin),
                    Cell::from(rout),
                ])
            } else {
                Row::new(vec![
                    Cell::from(d.name.clone()),
                    Cell::from(connection_cell(app, d, false)),
                    Cell::from(rin),
                    Cell::from(rout),
                ])
            }
        })
        .collect();
    let (widths, header): (Vec<Constraint>, Vec<&str>) = if wide {
        (
            vec![
                Constraint::Min(10),
                Constraint::Length(7),
                Constraint::Length(22),
                Constraint::Length(21),
                Constraint::Length(10),
                Constraint::Length(10),
            ],
            vec![
                text::COL_DEVICE,
                text::COL_ID,
                text::COL_CONN,
                text::COL_ADDRESS,
                text::COL_IN,
                text::COL_OUT,
            ],
        )
    } else {
        (
            vec![
                Constraint::Min(8),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(10),
            ],
            vec![
                text::COL_DEVICE,
                text::COL_CONN,
                text::COL_IN,
                text::COL_OUT,
            ],
        )
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(dim()))
        .block(block(&title))
        .row_highlight_style(selected())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.sel_device));
    frame.render_stateful_widget(table, top, &mut state);
    if let Some(d) = app.selected_device() {
        device_detail(app, d, frame, bottom);
    }
}

fn device_detail(app: &App, d: &super::app::DeviceStatus, frame: &mut Frame, area: Rect) {
    let outer = block(&d.name);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let addresses = app
        .device_conf(&d.id)
        .map(|c| c.addresses.join(", "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text::DIAL_BY_DISCOVERY.to_string());
    let connection = if d.paused {
        Span::styled(text::PAUSED, warn())
    } else if d.connected {
        Span::styled(text::connected_via(d.address.as_deref()), good())
    } else {
        Span::styled(text::last_seen(app.last_seen.get(&d.id).copied()), dim())
    };
    let shared: Vec<String> = app
        .folder_conf
        .iter()
        .filter(|f| f.devices.contains(&d.id))
        .map(|f| app.folder_label(&f.id))
        .collect();
    let info = vec![
        field_line(text::ID, d.id.clone()),
        field_line(text::ADDRESSES, addresses),
        field_line(text::CONNECTION, connection),
        field_line(
            text::SHARED_FOLDERS,
            if shared.is_empty() {
                text::NO_SHARED.to_string()
            } else {
                shared.join(", ")
            },
        ),
    ];
    let [info_area, rates] = Layout::vertical([
        Constraint::Length(info.len() as u16 + 1),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: false }), info_area);
    let t = app.traffic.get(&d.id).cloned().unwrap_or_default();
    let spark_height = (rates.height / 2).clamp(1, 3);
    let [in_area, out_area] = Layout::vertical([
        Constraint::Length(spark_height),
        Constraint::Length(spark_height),
    ])
    .areas(rates);
    for (area, label, rate, history, color) in [
        (
            in_area,
            text::IN_RATE,
            t.in_rate,
            &t.in_history,
            Color::Green,
        ),
        (
            out_area,
            text::OUT_RATE,
            t.out_rate,
            &t.out_history,
            Color::Blue,
        ),
    ] {
        let [l, s] = Layout::horizontal([Constraint::Length(18), Constraint::Min(0)]).areas(area);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(format!("{label}  "), dim()),
                Span::raw(text::rate(rate)),
            ])),
            l,
        );
        // The newest samples, right-aligned, as many as fit.
        let data: Vec<u64> = history
            .iter()
            .skip(history.len().saturating_sub(s.width as usize))
            .copied()
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                // A floor keeps keep-alives from looking like a full link.
                .max(data.iter().copied().max().unwrap_or(0).max(SPARK_FLOOR))
                .style(Style::new().fg(color)),
            s,
        );
    }
}

/// The smallest full scale of a rate sparkline, bytes per second.
const SPARK_FLOOR: u64 = 10_000;

// Pending.

fn pending(app: &App, frame: &mut Frame, area: Rect) {
    if app.pending_count() == 0 {
        frame.render_widget(
            loading_or(app, text::NOTHING_PENDING)
                .block(block(text::screen_title(Screen::Pending))),
            area,
        );
        return;
    }
    let items = app.pending_items();
    let selected_item = items.get(app.sel_pending).copied();
    let dev_height = count(app.pending.devices.len().max(1))
        .saturating_add(3)
        .min(area.height / 2);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(dev_height), Constraint::Min(0)]).areas(area);
    let wide = area.width >= WIDE;

    let dev_rows: Vec<Row> = if app.pending.devices.is_empty() {
        vec![Row::new(vec![Cell::from(Span::styled(
            text::NO_PENDING_DEVICES,
            dim(),
        ))])]
    } else {
        app.pending
            .devices
            .iter()
            .map(|d| {
                let seen = time::OffsetDateTime::parse(
                    &d.last_seen,
                    &time::format_description::well_known::Rfc3339,
                )
                .map(text::clock)
                .unwrap_or_else(|_| d.last_seen.clone());
                let mut cells = vec![
                    Cell::from(d.name.clone()),
                    Cell::from(Span::styled(short(&d.id).to_string(), dim())),
                ];
                if wide {
                    cells.push(Cell::from(d.address.clone()));
                }
                cells.push(Cell::from(seen));
                Row::new(cells)
            })
            .collect()
    };
    let (widths, header) = if wide {
        (
            vec![
                Constraint::Min(12),
                Constraint::Length(8),
                Constraint::Length(22),
                Constraint::Length(10),
            ],
            vec![
                text::COL_DEVICE,
                text::COL_ID,
                text::COL_ADDRESS,
                text::COL_LAST_SEEN,
            ],
        )
    } else {
        (
            vec![
                Constraint::Min(10),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
            vec![text::COL_DEVICE, text::COL_ID, text::COL_LAST_SEEN],
        )
    };
    let table = Table::new(dev_rows, widths)
        .header(Row::new(header).style(dim()))
        .block(block(text::PENDING_DEVICES))
        .row_highlight_style(selected())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(match selected_item {
        Some(PendingItem::Device(i)) => Some(i),
        _ => None,
    });
    frame.render_stateful_widget(table, top, &mut state);

    let folder_rows: Vec<Row> = if app.pending.folders.is_empty() {
        vec![Row::new(vec![Cell::from(Span::styled(
            text::NO_PENDING_FOLDERS,
            dim(),
        ))])]
    } else {
        app.pending
            .folders
            .iter()
            .map(|f| {
                let by = f
                    .offered_by
                    .iter()
                    .map(|d| app.device_name(d))
                    .collect::<Vec<_>>()
                    .join(", ");
                Row::new(vec![
                    Cell::from(f.label.clone()),
                    Cell::from(Span::styled(f.id.clone(), dim())),
                    Cell::from(by),
                ])
            })
            .collect()
    };
    let table = Table::new(
        folder_rows,
        [
            Constraint::Min(12),
            Constraint::Length(if wide { 20 } else { 12 }),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec![text::COL_LABEL, text::COL_ID, text::COL_OFFERED_BY]).style(dim()))
    .block(block(text::PENDING_FOLDERS))
    .row_highlight_style(selected())
    .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(match selected_item {
        Some(PendingItem::Folder(i)) => Some(i),
        _ => None,
    });
    frame.render_stateful_widget(table, bottom, &mut state);
}

// Events.

fn events(app: &App, frame: &mut Frame, area: Rect) {
    let inner_width = area.width.saturating_sub(4) as usize;
    let (title, body): (String, Vec<Line>) = match &app.conflicts {
        Conflicts::Loaded(list) if !list.is_empty() => (
            text::conflicts_title(Some(list.len())),
            list.iter()
                .flat_map(|c| {
                    [
                        Line::from(vec![
                            Span::styled(format!("{}  ", text::date_time(&c.created)), dim()),
                            Span::styled(format!("{}  ", app.folder_label(&c.folder)), bold()),
                            Span::styled(c.name.clone(), warn()),
                        ]),
                        Line::styled(
                            format!(
                                "                  {}",
                                text::conflict_line(&c.original, &app.device_name(&c.device))
                            ),
                            dim(),
                        ),
                    ]
                })
                .collect(),
        ),
        Conflicts::Loaded(_) => (
            text::conflicts_title(Some(0)),
            wrap(text::NO_CONFLICTS, inner_width)
                .into_iter()
                .map(|l| Line::styled(l, dim()))
                .collect(),
        ),
        Conflicts::Unknown => (
            text::conflicts_title(None),
            vec![Line::styled(text::LOADING, dim())],
        ),
        Conflicts::Unavailable(_) => (
            text::conflicts_title(None),
            wrap(text::CONFLICTS_NOTE, inner_width)
                .into_iter()
                .map(|l| Line::styled(l, dim()))
                .collect(),
        ),
    };
    // The conflicts take what they need, up to a third of the screen; the log the rest.
    let note_height = count(body.len())
        .saturating_add(2)
        .min((area.height / 3).max(3));
    let [note, log] =
        Layout::vertical([Constraint::Length(note_height), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(body).block(block(&title)), note);
    let mut outer = block(text::EVENTS);
    if app.log_scroll > 0 {
        outer = outer.title_bottom(Span::styled(text::scrolled_back(app.log_scroll), warn()));
    }
    if app.log.is_empty() {
        frame.render_widget(
            Paragraph::new(text::NO_EVENTS).style(dim()).block(outer),
            log,
        );
        return;
    }
    let height = outer.inner(log).height as usize;
    let lines = log_lines(app, height, outer.inner(log).width, app.log_scroll);
    frame.render_widget(Paragraph::new(lines).block(outer), log);
}

/// Visual lines of the log, wrapped to `width` with the text indented under itself,
/// filling `height` and ending `scroll` entries before the newest.
fn log_lines(app: &App, height: usize, width: u16, scroll: usize) -> Vec<Line<'static>> {
    const TIME: usize = 10;
    let room = (width as usize).saturating_sub(TIME).max(10);
    let end = app.log.len().saturating_sub(scroll);
    let mut out: Vec<Line<'static>> = Vec::new();
    for l in app.log.range(..end).rev() {
        if out.len() >= height {
            break;
        }
        let style = match l.level {
            super::app::Level::Info => Style::new(),
            super::app::Level::Warn => warn(),
            super::app::Level::Error => bad(),
        };
        let body = text::log_text(app, l);
        let body = if l.repeats > 1 {
            text::repeated(&body, l.repeats)
        } else {
            body
        };
        let mut entry: Vec<Line<'static>> = wrap(&body, room)
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let lead = if i == 0 {
                    Span::styled(format!("{}  ", text::clock(l.time)), dim())
                } else {
                    Span::raw(" ".repeat(TIME))
                };
                Line::from(vec![lead, Span::styled(part, style)])
            })
            .collect();
        // An entry is shown whole or not at all (but the newest always shows).
        if !out.is_empty() && out.len() + entry.len() > height {
            break;
        }
        // Newest at the bottom: entries are gathered backwards, lines kept in order.
        entry.reverse();
        out.extend(entry);
    }
    out.truncate(height);
    out.reverse();
    out
}

/// Splits `s` into pieces of at most `width` characters, at spaces where it can.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split(' ') {
        let (lc, wc) = (line.chars().count(), word.chars().count());
        if lc > 0 && lc + 1 + wc > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let head: String = line.chars().take(width).collect();
            let tail: String = line.chars().skip(width).collect();
            lines.push(head);
            line = tail;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}
