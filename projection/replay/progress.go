package replay

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventfold/eventfold/projection"
)

// display is how a rebuild shows its progress: the value of the rebuild
// command's --progress flag.
type display string

const (
	displayAuto  display = "auto"  // bar on a terminal, lines otherwise
	displayBar   display = "bar"   // a bar redrawn in place with \r
	displayLines display = "lines" // a line per report
	displayNone  display = "none"  // only the final line per projection
)

// String implements [flag.Value].
func (d *display) String() string { return string(*d) }

// Set implements [flag.Value].
func (d *display) Set(s string) error {
	switch v := display(s); v {
	case displayAuto, displayBar, displayLines, displayNone:
		*d = v
		return nil
	}
	return fmt.Errorf("want auto, bar, lines or none")
}

// resolve turns auto into bar or lines, as w is a terminal or not.
func (d display) resolve(w io.Writer) display {
	if d != displayAuto {
		return d
	}
	if isTerminal(w) {
		return displayBar
	}
	return displayLines
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// view draws the progress of rebuilds on w.
type view struct {
	w       io.Writer
	display display // bar, lines or none
	drawn   int     // width of the bar on screen; 0 when none is
}

// barWidth is the number of cells of the bar.
const barWidth = 24

// update shows a progress report.
func (v *view) update(p projection.Progress) {
	pct := percent(p)
	switch v.display {
	case displayLines:
		fmt.Fprintf(v.w, "%s: %d events, %d%% (%v), %s%s\n", p.Projection, p.Events, pct, p.Position, rate(p.Rate), left(p.Remaining, ", "))
	case displayBar:
		filled := pct * barWidth / 100
		line := fmt.Sprintf("%s [%s%s] %3d%%  %d events  %s%s", p.Projection,
			strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), pct, p.Events, rate(p.Rate), left(p.Remaining, "  "))
		v.draw(line)
	}
}

// finish prints the final line of a projection, in place of its bar.
func (v *view) finish(line string) {
	if v.drawn > 0 {
		v.draw(line)
		v.drawn = 0
		fmt.Fprintln(v.w)
		return
	}
	fmt.Fprintln(v.w, line)
}

// note prints a line of its own.
func (v *view) note(line string) {
	v.end()
	fmt.Fprintln(v.w, line)
}

// end ends the line of a bar, if one is drawn, so that what follows starts
// on a line of its own.
func (v *view) end() {
	if v.drawn > 0 {
		v.drawn = 0
		fmt.Fprintln(v.w)
	}
}

// draw redraws the bar's line with line, blanking what is left of a longer
// previous one.
func (v *view) draw(line string) {
	n := utf8.RuneCountInString(line)
	fmt.Fprintf(v.w, "\r%s%s", line, strings.Repeat(" ", max(v.drawn-n, 0)))
	v.drawn = n
}

// percent is how far p is through the log, from the commit positions of
// its checkpoint and of the head of the log, from 0 to 100.
func percent(p projection.Progress) int {
	if p.Done || p.Head.Commit == 0 || p.Position.Compare(p.Head) >= 0 {
		return 100
	}
	return int(min(float64(p.Position.Commit)/float64(p.Head.Commit)*100, 100))
}

func rate(r float64) string { return fmt.Sprintf("%.0f events/s", r) }

// left formats the time left after sep, or nothing when unknown.
func left(d time.Duration, sep string) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Second:
		return sep + "<1s left"
	}
	return sep + "~" + d.Round(time.Second).String() + " left"
}
