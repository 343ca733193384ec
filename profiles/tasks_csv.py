from profiles.csv_import import csv_import_run
from profiles.models import CsvImport


def csv_import_run_task(*, csv_import_id: int) -> int:
    csv_import = CsvImport.objects.select_related("source").get(pk=csv_import_id)
    return csv_import_run(csv_import=csv_import).rows_read
