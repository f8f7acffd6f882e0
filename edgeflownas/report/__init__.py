"""Using a trained supernet: run reports, figures, flow pictures, ranking stability, subnet evaluation."""
