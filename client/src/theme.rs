//! Colours for dark and light terminals. Every style the view uses comes from here; nick
//! colours are picked by a stable hash of the nick from a palette readable on that
//! background.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ThemeName {
    /// Light where the terminal says its background is light (`COLORFGBG`), else dark.
    #[default]
    Auto,
    Dark,
    Light,
}

impl ThemeName {
    /// `Auto` decided from a `COLORFGBG` value (`fg;bg` or `fg;extra;bg`, set by rxvt,
    /// Konsole, iTerm2 and others): a background of colour 7 (light grey) or 9-15 (the
    /// bright colours but 8, dark grey) is light. Without the variable: dark.
    pub fn resolve(self, colorfgbg: Option<&str>) -> ThemeName {
        if self != ThemeName::Auto {
            return self;
        }
        let background = colorfgbg
            .and_then(|v| v.rsplit(';').next())
            .and_then(|bg| bg.trim().parse::<u8>().ok());
        match background {
            Some(7 | 9..=15) => ThemeName::Light,
            _ => ThemeName::Dark,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: ThemeName,
    pub title: Style,
    pub status: Style,
    pub sidebar: Style,
    pub sidebar_active: Style,
    pub sidebar_ns: Style,
    pub unread: Style,
    pub mention: Style,
    pub timestamp: Style,
    pub info: Style,
    pub error: Style,
    pub marker: Style,
    /// A search hit: the chosen one in the results, the line jumped to.
    pub found: Style,
    pub text: Style,
    pub separator: Style,
    pub prompt: Style,
    pub nick_palette: [Color; 8],
}

impl Theme {
    /// The theme of that name (`Auto` from this process's `COLORFGBG`).
    pub fn new(name: ThemeName) -> Theme {
        match name.resolve(std::env::var("COLORFGBG").ok().as_deref()) {
            ThemeName::Light => Theme::light(),
            ThemeName::Dark | ThemeName::Auto => Theme::dark(),
        }
    }

    /// Light text on a dark background.
    pub fn dark() -> Theme {
        Theme {
            name: ThemeName::Dark,
            title: Style::new().fg(Color::White).bg(Color::Blue),
            status: Style::new().fg(Color::Black).bg(Color::Gray),
            sidebar: Style::new(),
            sidebar_active: Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            sidebar_ns: Style::new()
                .fg(Color::LightBlue)
                .add_modifier(Modifier::BOLD),
            unread: Style::new().fg(Color::White).add_modifier(Modifier::BOLD),
            mention: Style::new()
                .fg(Color::LightYellow)
                .add_modifier(Modifier::BOLD),
            timestamp: Style::new().fg(Color::DarkGray),
            info: Style::new().fg(Color::Gray),
            error: Style::new().fg(Color::LightRed),
            marker: Style::new().fg(Color::LightRed),
            found: Style::new().add_modifier(Modifier::REVERSED),
            text: Style::new(),
            separator: Style::new().fg(Color::DarkGray),
            prompt: Style::new().fg(Color::Cyan),
            nick_palette: [
                Color::LightRed,
                Color::LightGreen,
                Color::LightYellow,
                Color::LightBlue,
                Color::LightMagenta,
                Color::LightCyan,
                Color::Indexed(208),
                Color::Indexed(141),
            ],
        }
    }

    /// Dark text on a light background: no pale yellows or cyans.
    pub fn light() -> Theme {
        Theme {
            name: ThemeName::Light,
            title: Style::new().fg(Color::White).bg(Color::Blue),
            status: Style::new().fg(Color::White).bg(Color::DarkGray),
            sidebar: Style::new(),
            sidebar_active: Style::new()
                .fg(Color::White)
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD),
            sidebar_ns: Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
            unread: Style::new().fg(Color::Black).add_modifier(Modifier::BOLD),
            mention: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            timestamp: Style::new().fg(Color::DarkGray),
            info: Style::new().fg(Color::DarkGray),
            error: Style::new().fg(Color::Red),
            marker: Style::new().fg(Color::Red),
            found: Style::new().add_modifier(Modifier::REVERSED),
            text: Style::new(),
            separator: Style::new().fg(Color::Gray),
            prompt: Style::new().fg(Color::Blue),
            nick_palette: [
                Color::Red,
                Color::Green,
                Color::Blue,
                Color::Magenta,
                Color::Indexed(130),
                Color::Indexed(24),
                Color::Indexed(90),
                Color::Indexed(28),
            ],
        }
    }

    /// The colour of a nick: the same nick always gets the same colour (FNV-1a hash).
    pub fn nick_color(&self, nick: &str) -> Color {
        let mut h: u32 = 0x811c_9dc5;
        for b in nick.to_lowercase().bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        self.nick_palette[(h % self.nick_palette.len() as u32) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_colours_are_stable_and_case_blind() {
        let t = Theme::dark();
        assert_eq!(t.nick_color("Alice"), t.nick_color("alice"));
        let colours: std::collections::HashSet<_> = ["alice", "bob", "carol", "dave", "eve"]
            .iter()
            .map(|n| format!("{:?}", t.nick_color(n)))
            .collect();
        assert!(colours.len() >= 3);
    }
}

#[cfg(test)]
mod auto_tests {
    use super::ThemeName;

    #[test]
    fn auto_reads_the_terminals_background() {
        let auto = ThemeName::Auto;
        assert_eq!(auto.resolve(Some("0;15")), ThemeName::Light);
        assert_eq!(auto.resolve(Some("0;default;7")), ThemeName::Light);
        assert_eq!(auto.resolve(Some("15;0")), ThemeName::Dark);
        assert_eq!(auto.resolve(Some("7;8")), ThemeName::Dark);
        assert_eq!(auto.resolve(Some("garbage")), ThemeName::Dark);
        assert_eq!(auto.resolve(None), ThemeName::Dark);
        assert_eq!(ThemeName::Light.resolve(Some("15;0")), ThemeName::Light);
        assert_eq!(ThemeName::Dark.resolve(Some("0;15")), ThemeName::Dark);
    }
}
