"""Words in sentences: the nine sentence-variation tasks and their data set."""
from embcompare.contextual.tasks import (TASKS, Sentence, TaskFormatError, TaskRecord, read_tasks,
                                         write_tasks)

__all__ = ["TASKS", "Sentence", "TaskFormatError", "TaskRecord", "read_tasks", "write_tasks"]
