//! HTML building blocks: the one escaping rule for anything that came from the process, and
//! the sortable, capped tables every section uses.
//!
//! Text from the process (function names, paths, commands) may hold `<`, `&`, quotes,
//! `</script>`, control characters and escape sequences. [`text`] first writes control
//! characters in goroscope's notation ([`goroscope_model::escape_controls`]: `\e`, `\n`,
//! `\xNN`), then escapes the five HTML-significant characters, so the result is safe both
//! as element content and inside a double-quoted attribute.

use std::fmt::Write as _;

use super::format::format_count;

/// The most rows a table shows; the rest are summed up in a last row saying how many.
pub(crate) const MAX_TABLE_ROWS: usize = 200;

/// `raw` made safe for HTML text and double-quoted attribute values.
pub(crate) fn text(raw: &str) -> String {
    let visible = goroscope_model::escape_controls(raw);
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A cell of a [`Table`]: its HTML (already escaped) and the value it sorts by.
pub(crate) struct Cell {
    html: String,
    sort: Option<f64>,
    numeric: bool,
}

impl Cell {
    /// A text cell from process data or prose: escaped here.
    pub(crate) fn text(raw: &str) -> Cell {
        Cell {
            html: text(raw),
            sort: None,
            numeric: false,
        }
    }

    /// A cell of code (a function, a path): escaped here, shown monospaced.
    pub(crate) fn code(raw: &str) -> Cell {
        Cell {
            html: format!("<code>{}</code>", text(raw)),
            sort: None,
            numeric: false,
        }
    }

    /// A cell whose HTML the caller built (and escaped).
    pub(crate) fn html(html: String) -> Cell {
        Cell {
            html,
            sort: None,
            numeric: false,
        }
    }

    /// A number shown as `shown` and sorted by `value`, right-aligned.
    pub(crate) fn number(shown: String, value: f64) -> Cell {
        Cell {
            html: text(&shown),
            sort: Some(value),
            numeric: true,
        }
    }

    /// An exact count.
    pub(crate) fn count(count: u64) -> Cell {
        Cell::number(format_count(count), count as f64)
    }
}

/// A table: a header row, at most [`MAX_TABLE_ROWS`] body rows, sortable by clicking a
/// header (see `script.js`).
pub(crate) struct Table {
    headers: Vec<(&'static str, bool)>,
    rows: Vec<(String, Vec<Cell>)>,
    total_rows: usize,
    limit: usize,
}

impl Table {
    /// A table with these column headers; `true` marks numeric columns (right-aligned).
    pub(crate) fn new(headers: &[(&'static str, bool)]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
            total_rows: 0,
            limit: MAX_TABLE_ROWS,
        }
    }

    /// Shows at most `limit` rows instead of [`MAX_TABLE_ROWS`].
    pub(crate) fn limit(mut self, limit: usize) -> Table {
        self.limit = limit;
        self
    }

    /// Adds a row; `attributes` (already escaped, with a leading space, or empty) go on its `<tr>`.
    /// Rows past the limit are only counted.
    pub(crate) fn row(&mut self, attributes: String, cells: Vec<Cell>) {
        self.total_rows += 1;
        if self.rows.len() < self.limit {
            self.rows.push((attributes, cells));
        }
    }

    /// The table's HTML, with `class` on the `<table>`.
    pub(crate) fn render(&self, class: &str, out: &mut String) {
        let _ = write!(
            out,
            "<div class=\"table-wrap\"><table class=\"sortable {class}\"><thead><tr>"
        );
        for (header, numeric) in &self.headers {
            let class = if *numeric { " class=\"num\"" } else { "" };
            let _ = write!(out, "<th{class} tabindex=\"0\">{}</th>", text(header));
        }
        out.push_str("</tr></thead><tbody>");
        for (attributes, cells) in &self.rows {
            let _ = write!(out, "<tr{attributes}>");
            for cell in cells {
                match cell.sort {
                    Some(value) => {
                        let _ = write!(
                            out,
                            "<td class=\"num\" data-v=\"{value}\">{}</td>",
                            cell.html
                        );
                    }
                    None if cell.numeric => {
                        let _ = write!(out, "<td class=\"num\">{}</td>", cell.html);
                    }
                    None => {
                        let _ = write!(out, "<td>{}</td>", cell.html);
                    }
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody>");
        let hidden = self.total_rows - self.rows.len();
        if hidden > 0 {
            let _ = write!(
                out,
                "<tfoot><tr><td class=\"more\" colspan=\"{}\">{} more not shown</td></tr></tfoot>",
                self.headers.len(),
                format_count(hidden as u64)
            );
        }
        out.push_str("</table></div>");
    }
}

/// A paragraph saying why something is not shown.
pub(crate) fn empty(out: &mut String, why: &str) {
    let _ = write!(out, "<p class=\"empty\">{}</p>", text(why));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_text_is_escaped_for_html_and_controls_are_shown() {
        assert_eq!(
            text("</script><b a=\"x\">&'\u{1b}[31m"),
            "&lt;/script&gt;&lt;b a=&quot;x&quot;&gt;&amp;&#39;\\e[31m"
        );
        assert_eq!(text("main.(*T).run"), "main.(*T).run");
    }

    #[test]
    fn tables_cap_their_rows_and_say_how_many_more() {
        let mut table = Table::new(&[("name", false), ("calls", true)]).limit(2);
        for i in 0..5u64 {
            table.row(String::new(), vec![Cell::text("x<y"), Cell::count(i)]);
        }
        let mut out = String::new();
        table.render("t", &mut out);
        // The header row, two body rows and the "more" row.
        assert_eq!(out.matches("<tr>").count(), 4, "{out}");
        assert!(out.contains("3 more not shown"), "{out}");
        assert!(out.contains("x&lt;y"), "{out}");
        assert!(out.contains("data-v=\"1\""), "{out}");
    }
}
