//! speccascade-report: tables, figures, Table-2 numbers and the regression check.
