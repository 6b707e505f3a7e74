//! Go's `text/tabwriter` column-block algorithm, which kubectl's describers write through.
//!
//! Text is cut into cells at tabs; the last cell of a line is not tab-terminated and never
//! aligned. Column `i` is aligned over each run of consecutive lines that have a
//! tab-terminated cell `i`, so a line without a tab ends every block — that is what makes a
//! describer's sections align independently.

/// Aligns `text` with `padding` spaces after the widest cell of each column block.
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format(
        &lines,
        0,
        lines.len(),
        &mut widths,
        min_width,
        padding,
        &mut out,
    );
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    min_width: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column >= lines[this].len() - 1 {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = min_width;
        while this < line1 && column < lines[this].len() - 1 {
            w = w.max(width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(w);
        format(lines, line0, this, widths, min_width, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() && j < widths.len() {
                out.extend(std::iter::repeat_n(' ', widths[j] - width(cell)));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn blocks_end_at_lines_without_tabs() {
        let text = "Name:\tx\nLabels:\ta=b\n\tc=d\nContainers:\n  web:\n    Image:\tnginx\n    Port:\t80\n";
        assert_eq!(
            align(text, 0, 2),
            "Name:    x\nLabels:  a=b\n         c=d\nContainers:\n  web:\n    Image:  nginx\n    Port:   80\n"
        );
    }
}
